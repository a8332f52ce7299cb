"""Reading a run: its dossier as the API and the pages show it, and the jobs that evaluated it.

The holdout rule is kept here and nowhere else: a holdout segment shows its metrics only, no curve, no trades
(the kernel never writes them either). Every file is read confined to the run's folder; nothing here writes.
"""
import csv
import io
import json
import math
import re

from contracts import iso

from .artifacts import read_artifact
from .dossier import dossier_root
from .errors import ArtifactNotFound, DossierError, HoldoutHidden, InvalidRunId, RunNotFound, SegmentNotFound
from .models import RegistryEntry

RUN_ID = re.compile(r"^[0-9a-f]{12}$")  # the first 12 hex characters of the runspec's sha256
SEGMENT_PARTS = ("metrics", "curve", "trades")
# Columns of the dossier's CSV files that hold text or counts; every other cell is a float.
TEXT_COLUMNS = frozenset({"date", "symbol", "side", "entry_date", "exit_date"})
INT_COLUMNS = frozenset({"bars"})


def shows(role: str | None, part: str) -> bool:
    """The holdout rule: whether a segment of `role` shows `part`. A holdout shows its metrics only."""
    return role != "holdout" or part == "metrics"


def _refuse_hidden(role: str | None, part: str) -> None:
    if not shows(role, part):
        raise HoldoutHidden("the holdout shows metrics only: no curve, no trades")


def check_run_id(run_id) -> str:
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise InvalidRunId("no such run: a run id is 12 lowercase hex characters")
    return run_id


def _read(run_id: str, inner: str, shown_as: str) -> bytes:
    """A file of the run's dossier, if it lies in the run's folder (symlinks included); a missing one is named
    as the reader knows it, never by its storage path."""
    folder = dossier_root(run_id)
    try:
        return read_artifact(f"{folder}/{inner}", within=folder)
    except ArtifactNotFound:
        raise ArtifactNotFound(f"no artifact {shown_as}") from None


def _dossier_json(run_id: str, name: str):
    try:
        return json.loads(_read(run_id, name, name))
    except ArtifactNotFound:
        raise RunNotFound(f"run {run_id} not found") from None


def _segment_roles(run_id: str) -> dict[str, str]:
    return {s["segment_id"]: s["role"] for s in _dossier_json(run_id, "dossier.json")["segments"]}


def run_trials(run_id: str) -> list[dict]:
    """The registry's record of every job that evaluated this run: one query."""
    return [
        {"job_id": e.job_id, "verdict": e.verdict, "created_at": iso(e.created_at)}
        for e in RegistryEntry.objects.filter(run_id=run_id).order_by("id")
    ]


def run_detail(*, run_id: str) -> dict:
    """The run's index, stitched out-of-sample metrics and per-segment headline metrics (holdout included:
    metrics only), with the jobs that evaluated it."""
    check_run_id(run_id)
    index = _dossier_json(run_id, "dossier.json")
    metrics = _dossier_json(run_id, "metrics.json")
    summary = _dossier_json(run_id, "segments_summary.json")
    segments = [{**row, "has_curve": shows(row.get("role"), "curve")} for row in summary.get("segments", [])]
    return {
        "run_id": run_id,
        "kernel_version": index.get("kernel_version"),
        "snapshot_id": index.get("snapshot_id"),
        "snapshot_sha256": index.get("snapshot_sha256"),
        "policy_bundle_id": index.get("policy_bundle_id"),
        "policy_bundle_sha256": index.get("policy_bundle_sha256"),
        "holdout_visibility": index.get("holdout_visibility", "metrics_only"),
        "metrics": {k: v for k, v in metrics.items() if k != "run_id"},
        "segments": segments,
        "test_segments": summary.get("test_segments"),
        "positive_share": summary.get("positive_share"),
        "trials": run_trials(run_id),
    }


def run_segment(*, run_id: str, segment_id: str, part: str = "all") -> dict:
    """One segment's metrics, curve and trades, or the one `part` asked for: what the segment shows. A holdout
    shows its metrics only: asking for its curve or trades is HoldoutHidden."""
    check_run_id(run_id)
    roles = _segment_roles(run_id)
    if segment_id not in roles:
        raise SegmentNotFound(f"run {run_id} has no segment {segment_id}")
    role = roles[segment_id]
    if part != "all":
        _refuse_hidden(role, part)
    view = {"run_id": run_id, "segment_id": segment_id, "role": role}
    for name in SEGMENT_PARTS:
        if part in ("all", name) and shows(role, name):
            view[name] = _segment_part(run_id, segment_id, name)
    return view


def _segment_part(run_id: str, segment_id: str, name: str):
    if name == "metrics":
        return json.loads(_read(run_id, f"segments/{segment_id}/metrics.json", "metrics.json"))
    return _csv_table(_read(run_id, f"segments/{segment_id}/{name}.csv", f"{name}.csv"))


def dossier_file(run_id: str, inner: str) -> bytes:
    """The file at `inner` in the run's dossier (a job's `dossier/...` alias): HoldoutHidden for a holdout's
    curve or trades, ArtifactNotFound for anything not there."""
    parts = inner.split("/")
    if len(parts) == 3 and parts[0] == "segments" and parts[2] in ("curve.csv", "trades.csv"):
        _refuse_hidden(_segment_roles(run_id).get(parts[1]), parts[2].removesuffix(".csv"))
    return _read(run_id, inner, inner)


def _csv_table(data: bytes) -> dict:
    lines = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    if not lines:
        return {"columns": [], "rows": []}
    columns, body = lines[0], lines[1:]
    kinds = ["text" if name in TEXT_COLUMNS else "int" if name in INT_COLUMNS else "float" for name in columns]
    return {"columns": columns, "rows": [[_cell(v, kind) for v, kind in zip(row, kinds)] for row in body]}


def _cell(value: str, kind: str):
    if value == "" or kind == "text":
        return value or None
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return None
    return int(number) if kind == "int" else number


def run_oos_curve(*, run_id: str) -> dict | None:
    """The stitched out-of-sample curve (oos_curve.csv: the test segments end to end, strategy and benchmark),
    or None for a dossier that has none. Every date must lie in a test segment, so no holdout bar is ever read
    out: a file that reaches past them is refused (HoldoutHidden), not trimmed."""
    check_run_id(run_id)
    summary = _dossier_json(run_id, "segments_summary.json")
    try:
        table = _csv_table(_read(run_id, "oos_curve.csv", "oos_curve.csv"))
    except ArtifactNotFound:
        return None
    tests = [(s["start"], s["end"]) for s in summary.get("segments", []) if s.get("role") == "test"]
    if table["rows"] and "date" not in table["columns"]:
        raise DossierError("oos_curve.csv has no date column")
    dates = [row[table["columns"].index("date")] for row in table["rows"]]
    if any(not isinstance(d, str) or not any(start <= d <= end for start, end in tests) for d in dates):
        raise HoldoutHidden("the stitched curve reaches outside the test segments")
    return table
