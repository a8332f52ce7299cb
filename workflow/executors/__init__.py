"""Step executors, one module per step: thin adapters that read a job's inputs, call the research kernel,
write artifacts and return what the result event records. `workflow.orchestrator` registers them by name and
declares what they get (`StepContext`) and return (`StepOutcome`).
"""
