"""What a checkpoint reviews, ready to read: the artifact its WAITING_APPROVAL event named, read from the job's
folder and shown only when its bytes are the ones under review (the sha256 the approval will name). Shared by
the /ui job page and the admin's; nothing here writes.

A problem (a file missing, changed, not JSON, not a table) is reported as `problem`, never raised: the page
then says what is wrong instead of showing anything from the file.
"""
import csv
import io
import json
from datetime import date

from django.urls import reverse

from contracts import sha256_hex
from jobs.models import JobEvent
from jobs.pipelines import EventType
from jobs.review import api_artifact_path
from research.artifacts import read_artifact
from research.errors import ResearchError
from research.policies import load_policy_bundle

from .diffs import runspec_comparison

TRACE_SUMMARY = "summary.json"  # beside trace.csv; its sha256 is the one its result event recorded


def _flat(doc, prefix: str = "") -> list[tuple[str, object]]:
    """A nested document as (dotted name, value) rows, lists of plain values joined by commas."""
    rows = []
    for key, value in (doc or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flat(value, f"{name}.")
        elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
            rows.append((name, ", ".join(str(v) for v in value)))
        else:
            rows.append((name, value))
    return rows


def _strategy_rows(strategy: dict) -> list[tuple[str, object]]:
    rows = [("family", strategy.get("family"))]
    rows += [(f"param {name}", value) for name, value in sorted((strategy.get("params") or {}).items())]
    rows += [(name, strategy[name]) for name in ("direction", "rebalance") if name in strategy]
    return rows


def blueprint_tables(doc: dict) -> list[dict]:
    """A blueprint (or a proposal's) as captioned tables: strategy and every parameter, universe, window,
    costs, evaluation."""
    return [
        {"caption": "Strategy", "rows": _strategy_rows(doc.get("strategy") or {})},
        {"caption": "Universe and window", "rows": [
            ("symbols", ", ".join((doc.get("universe") or {}).get("symbols") or [])),
            *_flat(doc.get("period") or {}, "period."),
        ]},
        {"caption": "Costs", "rows": _flat(doc.get("costs") or {})},
        {"caption": "Evaluation", "rows": _flat(doc.get("evaluation") or {})},
    ]


def _strategy_spec(doc: dict) -> dict:
    def sourced(name):
        item = doc.get(name) or {}
        return (name, item.get("value"), item.get("source")) if isinstance(item, dict) else (name, item, None)

    return {
        "family": doc.get("family"),
        "choices": [sourced("direction"), sourced("rebalance")],
        "parameters": doc.get("parameters") or [],
        "signal": doc.get("signal") or {},
        "execution_words": (doc.get("execution") or {}).get("words"),
        "tables": [
            {"caption": "Execution conventions",
             "rows": [row for row in _flat(doc.get("execution") or {}) if row[0] != "words"]},
            {"caption": "Costs", "rows": [(name, item.get("value"), item.get("source"))
                                          for name, item in sorted((doc.get("costs") or {}).items())]},
            {"caption": "Risk rules", "rows": _flat(doc.get("risk") or {})},
            {"caption": "Universe and data window", "rows": [("symbols", ", ".join(doc.get("universe") or [])),
                                                             *_flat(doc.get("data_window") or {})]},
            {"caption": "Policy", "rows": _flat(doc.get("policy") or {})},
        ],
        "checks": doc.get("checks") or [],
    }


def segment_timeline(segments: list[dict]) -> list[dict]:
    """Each segment with where its bar starts and how wide it is, in percent of the span from the first start to
    the last end (by calendar days); empty when a date cannot be read."""
    try:
        spans = [(date.fromisoformat(s["start"]), date.fromisoformat(s["end"])) for s in segments]
    except (KeyError, TypeError, ValueError):
        return []
    if not spans:
        return []
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    days = max((last - first).days, 1)
    return [{**s, "left": round(100 * (a - first).days / days, 2),
             "width": max(round(100 * (b - a).days / days, 2), 0.5)} for s, (a, b) in zip(segments, spans)]


def policy_gates(policy_bundle_id: str, runspec_sha256: str | None) -> dict:
    """The gates of the job's policy bundle (id, metric, operator, threshold, description), and whether the
    bundle is still the one the runspec was compiled with; `problem` when it cannot be read."""
    try:
        bundle, sha256 = load_policy_bundle(policy_bundle_id)
    except ResearchError as exc:
        return {"policy_bundle_id": policy_bundle_id, "problem": str(exc)}
    return {"policy_bundle_id": policy_bundle_id, "sha256": sha256, "gates": bundle.get("gates") or [],
            "changed": bool(runspec_sha256) and runspec_sha256 != sha256}


def _runspec(doc: dict, detail: dict) -> dict:
    segments = (doc.get("segments") or {}).get("list") or []
    data = doc.get("data") or {}
    return {
        "tables": [
            {"caption": "Strategy", "rows": _strategy_rows(doc.get("strategy") or {})},
            {"caption": "Universe and data", "rows": [("symbols", ", ".join((doc.get("universe") or {}).get("symbols") or [])),
                                                      *_flat(data), *_flat(doc.get("warmup") or {}, "warmup.")]},
            {"caption": "Costs", "rows": _flat(doc.get("costs") or {})},
            {"caption": "Evaluation and execution", "rows": [*_flat(doc.get("evaluation") or {}),
                                                             *_flat(doc.get("execution") or {}, "execution.")]},
            {"caption": "Portfolio, benchmark and stress", "rows": [*_flat(doc.get("portfolio") or {}),
                                                                    *_flat(doc.get("benchmark") or {}, "benchmark."),
                                                                    *_flat(doc.get("stress") or {}, "stress.")]},
            {"caption": "Kernel and policy", "rows": [("kernel_version", doc.get("kernel_version")),
                                                      *_flat(doc.get("policy") or {})]},
        ],
        "segments": segments,
        "timeline": segment_timeline(segments),
        "gates": policy_gates(detail["policy_bundle_id"], (doc.get("policy") or {}).get("policy_bundle_sha256")),
        "comparison": runspec_comparison(detail, doc),
    }


def _number(text: str):
    """A CSV cell as the number it writes, when it writes one (the table formats numbers)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _trace(data: bytes, summary: dict | None) -> dict:
    reader = csv.reader(io.StringIO(data.decode("utf-8")))
    columns = next(reader, [])
    meanings = {c.get("name"): c.get("meaning") for c in (summary or {}).get("columns") or []}
    return {
        "columns": [{"name": name, "meaning": meanings.get(name, "")} for name in columns],
        "rows": [[_number(cell) for cell in row] for row in reader],
        "summary": summary,
    }


def _read(job_id: str, storage_path: str, sha256: str) -> bytes:
    """The file's bytes if they are the ones recorded with `sha256`; ResearchError or ValueError otherwise."""
    data = read_artifact(storage_path, within=f"jobs/{job_id}")
    if sha256_hex(data) != sha256:
        name = storage_path.rsplit("/", 1)[-1]
        raise ValueError(f"the bytes of {name} (sha256 {sha256_hex(data)}) are not the ones recorded ({sha256})")
    return data


def _proposal(proposal: dict) -> dict:
    params = ((proposal.get("blueprint") or {}).get("strategy") or {}).get("params") or {}
    return {**proposal, "params": sorted(params.items())}


def checkpoint_review(detail: dict) -> dict | None:
    """What the checkpoint the job waits at reviews, or None when it waits at none: one query (the waiting
    event), one read of the artifact, and for the trace preview one of its summary; for a runspec one more
    query and read, those of the runspec it is compared with."""
    step, sha256 = detail["waiting_step"], detail["review_sha256"]
    if detail["status"] != "waiting_approval" or not step:
        return None
    job_id = detail["job_id"]
    waiting = (JobEvent.objects.filter(job_id=job_id, event_type=str(EventType.WAITING_APPROVAL))
               .order_by("-seq").values_list("payload", flat=True).first()) or {}
    # Events written before WAITING_APPROVAL named its file: the recorded artifact with the sha256 under review.
    storage_path = waiting.get("artifact_path") or next(
        (a["path"] for a in detail["artifacts"] if sha256 and a["sha256"] == sha256), None)
    review = {"step": step, "path": storage_path, "sha256": sha256}
    if not storage_path or not sha256:
        return {**review, "problem": "the checkpoint names no artifact to show"}
    relative = api_artifact_path(job_id=job_id, run_id=detail["run_id"], storage_path=storage_path)
    review["name"] = relative or storage_path
    review["href"] = reverse("job-artifact", kwargs={"job_id": job_id, "path": relative}) if relative else None
    try:
        data = _read(job_id, storage_path, sha256)
        if step == "trace_preview":
            summary_path = storage_path.rsplit("/", 1)[0] + "/" + TRACE_SUMMARY
            recorded = next((a for a in detail["artifacts"] if a["path"] == summary_path), None)
            summary = json.loads(_read(job_id, summary_path, recorded["sha256"])) if recorded else None
            return {**review, "trace": _trace(data, summary)}
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("it is not a JSON object")
    except (ResearchError, ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        return {**review, "problem": f"{review['name']} cannot be shown: {exc}"}
    if step == "blueprint":
        return {**review, "blueprint": blueprint_tables(doc)}
    if step == "strategy_spec":
        return {**review, "strategy_spec": _strategy_spec(doc)}
    if step == "runspec":
        return {**review, "runspec": _runspec(doc, detail)}
    if step == "improvements":
        return {**review, "improvements": {
            "diagnosis": doc.get("diagnosis") or {},
            "proposals": [_proposal(p) for p in doc.get("proposals") or []],
        }}
    return {**review, "document": doc}
