"""The blueprint pipeline as a viewflow flow: start -> compile -> approve (human) -> run -> gates -> registry -> end.

`StartHandle` starts a process from code, as a service does; `Function` nodes run synchronously inside the
transaction of whatever activated them (viewflow's built-in way to run automatic tasks without celery);
`approve` is a human `View` task that waits until a reviewer is assigned and completes it.
"""
from viewflow import this
from viewflow.workflow import flow
from viewflow.workflow.flow.views import UpdateProcessView


class BlueprintFlow(flow.Flow):
    start = flow.StartHandle(this.submit).Next(this.compile)
    compile = flow.Function(this.noop).Next(this.approve)
    # What a reviewer would get in the UI: a form on the process (no fields: approving is the decision).
    approve = flow.View(UpdateProcessView.as_view(fields=[])).Next(this.run)
    run = flow.Function(this.noop).Next(this.gates)
    gates = flow.Function(this.noop).Next(this.registry)
    registry = flow.Function(this.noop).Next(this.end)
    end = flow.End()

    def submit(self, activation, blueprint):
        # The submitted document is kept with the process, as EAM keeps the job spec.
        activation.process.data = {"blueprint": blueprint}
        return activation.process

    def noop(self, activation):
        """An automatic step that returns at once (EAM's side runs bench.noop_steps.execute)."""
