"""No-op step executors for measuring the engine alone (`bench_orchestrator.py --steps noop`).

Each returns at once with an empty result, so what is measured is claims, leases, events, hash chain,
fencing and the approval: the work any workflow engine does, without the research kernel.
"""
from workflow.orchestrator import StepContext, StepOutcome


def execute(context: StepContext) -> StepOutcome:
    return StepOutcome(summary={"noop": context.step})
