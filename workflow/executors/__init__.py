"""Step executors, registered by name: thin adapters that read a job's inputs, call the research kernel,
write artifacts and return what the result event records.

`settings.EAM_STEP_EXECUTORS` may map a step name to the dotted path of another executor (a deployment's
own implementation of a step, or an instrumented one in tests); the default is the module of that name.
"""
from dataclasses import dataclass, field
from typing import Callable

from django.conf import settings
from django.utils.module_loading import import_string

from jobs.models import JobSpec


@dataclass(frozen=True)
class StepContext:
    """What an executor gets: the job, the attempt and the worker running it."""

    job: JobSpec
    step: str
    attempt: int
    worker_id: str


@dataclass(frozen=True)
class StepOutcome:
    """What the result event records; `review` names the artifact a following checkpoint puts under review."""

    artifacts: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    review: dict | None = None


Executor = Callable[[StepContext], StepOutcome]
DEFAULT_EXECUTORS = {
    "compile": "workflow.executors.compile.execute",
    "run": "workflow.executors.run.execute",
    "gates": "workflow.executors.gates.execute",
    "registry": "workflow.executors.registry.execute",
}


def executor_for(step: str) -> Executor:
    path = getattr(settings, "EAM_STEP_EXECUTORS", {}).get(step) or DEFAULT_EXECUTORS.get(step)
    if path is None:
        raise LookupError(f"no executor is registered for step {step!r}")
    return import_string(path)

