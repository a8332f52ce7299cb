"""Data snapshots: ingest a long OHLCV CSV once, store its canonical bytes, and load them back verified.

A snapshot is the pair (DataSnapshot row, `snapshots/<id>/ohlcv.csv`). The file holds the canonical CSV
of the panel (see snapshot_csv), so the same data always has the same sha256 whatever the input's
formatting. Nothing is written until the whole input has been checked.
"""
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
from django.db import IntegrityError, transaction

from contracts import NAME_ID, sha256_hex

from .artifacts import read_artifact, write_artifact
from .demo_data import demo_csv
from .errors import ArtifactConflict, ArtifactNotFound, SnapshotError, SnapshotNotFound
from .models import DataSnapshot, data_path
from .snapshot_csv import Panel, canonical_csv, parse_ohlcv_csv

SNAPSHOT_ID = NAME_ID


@dataclass(frozen=True)
class IngestResult:
    snapshot: DataSnapshot
    created: bool


def check_snapshot_id(snapshot_id) -> str:
    if not isinstance(snapshot_id, str) or not SNAPSHOT_ID.fullmatch(snapshot_id):
        raise SnapshotError(f"invalid snapshot id {snapshot_id!r} (allowed: {SNAPSHOT_ID.pattern})")
    return snapshot_id


def get_snapshot(snapshot_id: str) -> DataSnapshot:
    """The snapshot's row: one query by primary key, asked every time."""
    check_snapshot_id(snapshot_id)
    try:
        return DataSnapshot.objects.get(snapshot_id=snapshot_id)
    except DataSnapshot.DoesNotExist:
        raise SnapshotNotFound(f"unknown snapshot {snapshot_id!r}") from None


def ingest_csv(*, snapshot_id: str, data: bytes, source: str = "") -> IngestResult:
    """Check `data`, then store it as snapshot `snapshot_id`. Same content again: no-op; other content: refused."""
    check_snapshot_id(snapshot_id)
    panel = parse_ohlcv_csv(data)
    content = canonical_csv(panel)
    sha256 = sha256_hex(content)
    existing = DataSnapshot.objects.filter(snapshot_id=snapshot_id).first()
    if existing is not None:
        _same_or_refuse(existing, sha256)
        write_artifact(data_path(snapshot_id), content)  # no-op, or restores a file lost from the storage
        return IngestResult(existing, created=False)
    try:
        write_artifact(data_path(snapshot_id), content)
    except ArtifactConflict as exc:
        raise SnapshotError(
            f"snapshot {snapshot_id!r}: {data_path(snapshot_id)} already holds other data; "
            "remove the orphan file or choose another id"
        ) from exc
    row = DataSnapshot(
        snapshot_id=snapshot_id,
        sha256=sha256,
        symbols=list(panel.symbols),
        start=_as_date(panel.dates[0]),
        end=_as_date(panel.dates[-1]),
        bars=len(panel.dates),
        rows=panel.close.size,
        bytes=len(content),
        source=source[:200],
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        # Another ingest of the same id won the race; it wrote the same file (or we would have conflicted).
        return IngestResult(_same_or_refuse(DataSnapshot.objects.get(snapshot_id=snapshot_id), sha256), created=False)
    _remember(sha256, panel)
    return IngestResult(row, created=True)


def ingest_demo(snapshot_id: str) -> IngestResult:
    """The deterministic synthetic snapshot (six symbols, ten years of business days), through ingest_csv."""
    return ingest_csv(snapshot_id=snapshot_id, data=demo_csv(snapshot_id), source="demo_ingest")


def _same_or_refuse(existing: DataSnapshot, sha256: str) -> DataSnapshot:
    if existing.sha256 != sha256:
        raise SnapshotError(
            f"snapshot {existing.snapshot_id!r} already exists with other content "
            f"(sha256 {existing.sha256}, this data {sha256}); snapshots are immutable, choose another id"
        )
    return existing


def _as_date(value: np.datetime64) -> date:
    return date.fromisoformat(np.datetime_as_string(value, unit="D"))


# Parsed panels by sha256: the file is still read and hashed on every load, only parsing is skipped. Keyed by
# content, an entry can never be stale, so nothing ever has to forget it. Parsing the demo snapshot costs a
# compile or a run 40-130 ms; a snapshot's row, by contrast, is one query by primary key and is not kept.
_PANELS: dict[str, Panel] = {}
_PANEL_CACHE_SIZE = 8


def _remember(sha256: str, data: Panel) -> Panel:
    if len(_PANELS) >= _PANEL_CACHE_SIZE:
        _PANELS.pop(next(iter(_PANELS)))
    _PANELS[sha256] = data
    return data


def load_panel(snapshot_id: str) -> Panel:
    """The snapshot's panel; SnapshotError if the stored file's sha256 is not the one recorded at ingest."""
    row = get_snapshot(snapshot_id)
    try:
        content = read_artifact(row.data_path)
    except ArtifactNotFound as exc:
        raise SnapshotError(f"snapshot {snapshot_id!r}: its file {row.data_path} is missing") from exc
    sha256 = sha256_hex(content)
    if sha256 != row.sha256:
        raise SnapshotError(
            f"snapshot {snapshot_id!r}: {row.data_path} has sha256 {sha256}, but {row.sha256} was recorded at ingest"
        )
    data = _PANELS.get(sha256) or _remember(sha256, parse_ohlcv_csv(content))
    return replace(data, snapshot_id=snapshot_id, sha256=sha256)
