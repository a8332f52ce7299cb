"""trace_preview: the approved runspec -> the kernel's own computation on the first bars of the first test
segment (`outputs/trace_preview/trace.csv`, `summary.json`; never the holdout). The trace_preview checkpoint
reviews trace.csv: the table of what the strategy computes, bar by bar and symbol by symbol."""
from research.artifacts import read_json_artifact
from research.trace import trace_preview, write_trace_preview

from ..orchestrator import StepContext, StepOutcome
from ._paths import runspec_path


def execute(context: StepContext) -> StepOutcome:
    path = runspec_path(context.job.job_id)
    runspec = read_json_artifact(path, sha256=context.recorded_sha256(path))  # the runspec approved
    preview = trace_preview(runspec)
    refs = [ref.as_dict() for ref in write_trace_preview(job_id=context.job.job_id, preview=preview)]
    window = preview.summary["window"]
    return StepOutcome(artifacts=refs,
                       summary={"run_id": preview.run_id, "bars": window["bars"], "start": window["start"],
                                "end": window["end"], "rows": preview.summary["rows"]},
                       review=refs[0])
