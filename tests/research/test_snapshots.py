"""Snapshots: strict CSV ingest that creates nothing on error, immutability, verified loading, demo data."""
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from contracts import sha256_hex
from research.demo_data import demo_csv
from research.errors import SnapshotError, SnapshotNotFound
from research.models import DataSnapshot
from research.snapshots import ingest_csv, ingest_demo, load_panel

from ..builders import small_csv, stored_files

# sha256 of `snapshots/demo_snap_001/ohlcv.csv`: the same bytes on every machine, every run.
DEMO_SNAP_001_SHA256 = "a97d79c36c77f3cedf79ce3baad95cd6594650881da0ac9556e7a460a2cb3be3"

VALID = """date,symbol,open,high,low,close,volume
2020-01-02,AAA,10,11,9,10.5,1000
2020-01-02,BBB,20,21,19,20.5,2000
2020-01-03,AAA,10.5,11.5,10,11,1100
2020-01-03,BBB,20.5,21.5,20,21,2100
"""


def _replace_line(text: str, line: int, new: str | None) -> str:
    lines = text.splitlines()
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    return "\n".join(lines) + "\n"


BAD_CSVS = {
    "empty file": ("", "line 1: empty file"),
    "header only": ("date,symbol,open,high,low,close,volume\n", "line 2: no data lines after the header"),
    "missing column": (
        "date,symbol,open,high,low,close\n2020-01-02,AAA,10,11,9,10.5\n",
        "line 1: missing column 'volume'",
    ),
    "unexpected column": (
        _replace_line(VALID, 1, "date,symbol,open,high,low,close,volume,note"),
        "line 1: unexpected column 'note'",
    ),
    "too few fields": (_replace_line(VALID, 3, "2020-01-02,BBB,20,21,19,20.5"), "line 3: expected 7 fields, got 6"),
    "unparsable date": (
        _replace_line(VALID, 4, "2020-13-03,AAA,10.5,11.5,10,11,1100"),
        "line 4: unparsable date '2020-13-03' (expected YYYY-MM-DD)",
    ),
    "date in another format": (
        _replace_line(VALID, 2, "2020/01/02,AAA,10,11,9,10.5,1000"),
        "line 2: unparsable date '2020/01/02'",
    ),
    "partial date": (_replace_line(VALID, 5, "2020-01,BBB,20.5,21.5,20,21,2100"), "line 5: unparsable date '2020-01'"),
    "unparsable number": (
        _replace_line(VALID, 3, "2020-01-02,BBB,20,21,19,abc,2000"),
        "line 3: unparsable number 'abc' in column 'close'",
    ),
    "not a finite number": (
        _replace_line(VALID, 4, "2020-01-03,AAA,nan,11.5,10,11,1100"),
        "line 4: unparsable number 'nan' in column 'open' (not finite)",
    ),
    "non-positive price": (
        _replace_line(VALID, 5, "2020-01-03,BBB,20.5,21.5,0,21,2100"),
        "line 5: non-positive price 0 in column 'low'",
    ),
    "negative price": (
        _replace_line(VALID, 2, "2020-01-02,AAA,10,11,9,-10.5,1000"),
        "line 2: non-positive price -10.5 in column 'close'",
    ),
    "negative volume": (_replace_line(VALID, 3, "2020-01-02,BBB,20,21,19,20.5,-5"), "line 3: negative volume -5"),
    "high below low": (_replace_line(VALID, 4, "2020-01-03,AAA,10.5,9,11,10.5,1100"), "line 4: high 9 < low 11"),
    "close above high": (
        _replace_line(VALID, 5, "2020-01-03,BBB,20.5,21.5,20,22,2100"),
        "line 5: close 22 outside the bar's range [low 20, high 21.5]",
    ),
    "duplicate date and symbol": (
        _replace_line(VALID, 3, "2020-01-02,AAA,10,11,9,10.5,1000"),
        "line 3: duplicate bar for 2020-01-02 AAA (first on line 2)",
    ),
    "unsorted dates": (
        "date,symbol,open,high,low,close,volume\n"
        "2020-01-03,AAA,10.5,11.5,10,11,1100\n"
        "2020-01-02,AAA,10,11,9,10.5,1000\n",
        "line 3: date 2020-01-02 is earlier than 2020-01-03 on line 2 (lines must be sorted by date)",
    ),
    "ragged panel": (
        _replace_line(VALID, 5, None),
        "line 4: ragged data: 2020-01-03 has no bar for BBB; every symbol needs a bar on every date",
    ),
    "invalid symbol": (_replace_line(VALID, 3, "2020-01-02,B/B,20,21,19,20.5,2000"), "line 3: invalid symbol 'B/B'"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_a_bad_csv_is_refused_with_its_line_and_creates_nothing(case, artifact_root):
    text, message = BAD_CSVS[case]

    with pytest.raises(SnapshotError) as caught:
        ingest_csv(snapshot_id="bad", data=text.encode(), source="test")

    assert str(caught.value).startswith(message)
    assert DataSnapshot.objects.count() == 0
    assert stored_files(artifact_root) == []


@pytest.mark.django_db
def test_non_utf8_input_is_refused(artifact_root):
    with pytest.raises(SnapshotError, match=r"^line 3: not UTF-8 text"):
        ingest_csv(snapshot_id="bad", data=_replace_line(VALID, 3, "2020-01-02,BBB,20,21,19,20.5,2000").encode()
                   .replace(b"BBB,20,", b"B\xffB,20,"))
    assert DataSnapshot.objects.count() == 0
    assert stored_files(artifact_root) == []


@pytest.mark.django_db
@pytest.mark.parametrize("snapshot_id", ["", "../x", "a/b", "-x", "x" * 65])
def test_an_unsafe_snapshot_id_is_refused(snapshot_id, artifact_root):
    with pytest.raises(SnapshotError, match="invalid snapshot id"):
        ingest_csv(snapshot_id=snapshot_id, data=VALID.encode())
    assert DataSnapshot.objects.count() == 0
    assert stored_files(artifact_root) == []


@pytest.mark.django_db
def test_ingest_stores_the_canonical_csv_and_records_it(artifact_root):
    shuffled = VALID.replace("2020-01-03,AAA,10.5,11.5,10,11,1100\n2020-01-03,BBB,20.5,21.5,20,21,2100",
                             "2020-01-03,BBB,20.50,21.5,20,21.0,2100\n2020-01-03,AAA,10.5,11.5,10,11,1100")
    shuffled = "symbol,date,open,high,low,close,volume\n" + "\n".join(
        ",".join([line.split(",")[1], line.split(",")[0]] + line.split(",")[2:]) for line in shuffled.splitlines()[1:]
    ) + "\r\n"

    result = ingest_csv(snapshot_id="tiny", data=shuffled.encode(), source="csv:tiny.csv")

    stored = (artifact_root / "snapshots/tiny/ohlcv.csv").read_bytes()
    assert stored == VALID.encode()  # columns reordered, rows sorted by symbol, numbers in their shortest form
    row = DataSnapshot.objects.get(snapshot_id="tiny")
    assert result.created
    assert (row.sha256, row.symbols, str(row.start), str(row.end), row.bars, row.rows, row.bytes) == (
        sha256_hex(stored), ["AAA", "BBB"], "2020-01-02", "2020-01-03", 2, 4, len(stored))
    assert stored_files(artifact_root) == ["snapshots/tiny/ohlcv.csv"]


@pytest.mark.django_db
def test_same_content_again_is_a_no_op_and_other_content_is_refused(artifact_root):
    first = ingest_csv(snapshot_id="tiny", data=VALID.encode())
    again = ingest_csv(snapshot_id="tiny", data=VALID.replace(",10.5,", ",10.50,").encode())  # same numbers

    assert first.created and not again.created
    assert again.snapshot.sha256 == first.snapshot.sha256

    with pytest.raises(SnapshotError, match="'tiny' already exists with other content"):
        ingest_csv(snapshot_id="tiny", data=VALID.replace("1100", "1200").encode())
    assert DataSnapshot.objects.count() == 1
    assert (artifact_root / "snapshots/tiny/ohlcv.csv").read_bytes() == VALID.encode()


@pytest.mark.django_db
def test_load_panel_gives_the_rectangular_panel(small_snapshot):
    panel = load_panel("small_snap")

    assert panel.snapshot_id == "small_snap" and panel.sha256 == small_snapshot.sha256
    assert panel.symbols == ("AAA", "BBB", "CCC", "DDD", "EEE")
    assert panel.dates.dtype == np.dtype("datetime64[D]") and panel.dates.shape == (1043,)
    for field in ("open", "high", "low", "close", "volume"):
        array = getattr(panel, field)
        assert array.dtype == np.float64 and array.shape == (1043, 5)
    assert (panel.high >= panel.low).all() and (panel.close > 0).all()
    assert str(panel.dates[0]) == "2016-01-01" and str(panel.dates[-1]) == "2019-12-31"


@pytest.mark.django_db
def test_load_panel_refuses_a_file_that_changed(small_snapshot, artifact_root):
    path = artifact_root / "snapshots/small_snap/ohlcv.csv"
    path.write_bytes(path.read_bytes().replace(b"AAA", b"AAB", 1))

    with pytest.raises(SnapshotError, match="but .* was recorded at ingest"):
        load_panel("small_snap")
    assert sha256_hex(path.read_bytes()) != small_snapshot.sha256


@pytest.mark.django_db
def test_load_panel_of_an_unknown_snapshot():
    with pytest.raises(SnapshotNotFound, match="unknown snapshot 'nope'"):
        load_panel("nope")


@pytest.mark.django_db
def test_demo_snapshot_is_byte_identical_everywhere(artifact_root):
    result = ingest_demo("demo_snap_001")

    snapshot = result.snapshot
    assert snapshot.sha256 == DEMO_SNAP_001_SHA256
    assert sha256_hex((artifact_root / "snapshots/demo_snap_001/ohlcv.csv").read_bytes()) == DEMO_SNAP_001_SHA256
    assert len(snapshot.symbols) >= 5
    assert (snapshot.start.isoformat(), snapshot.end.isoformat()) == ("2014-01-01", "2023-12-29")
    assert snapshot.bars >= 10 * 250 and snapshot.rows == snapshot.bars * len(snapshot.symbols)
    assert demo_csv("demo_snap_001") == demo_csv("demo_snap_001")
    assert demo_csv("demo_snap_002") != demo_csv("demo_snap_001")  # seeded from the id


@pytest.mark.django_db
def test_demo_ingest_command_is_idempotent(capsys):
    call_command("demo_ingest", "--snapshot-id", "demo_cmd")
    call_command("demo_ingest", "--snapshot-id", "demo_cmd")

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("snapshot demo_cmd created: 6 symbols, 2014-01-01..2023-12-29")
    assert out[1].startswith("snapshot demo_cmd already present with the same content")
    assert DataSnapshot.objects.count() == 1


@pytest.mark.django_db
def test_ingest_snapshot_command(tmp_path, capsys, artifact_root):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(small_csv())
    bad.write_text(BAD_CSVS["duplicate date and symbol"][0])

    call_command("ingest_snapshot", "--snapshot-id", "real_001", "--csv", str(good))
    with pytest.raises(CommandError, match=r"bad.csv: line 3: duplicate bar for 2020-01-02 AAA"):
        call_command("ingest_snapshot", "--snapshot-id", "real_002", "--csv", str(bad))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("ingest_snapshot", "--snapshot-id", "real_003", "--csv", str(tmp_path / "missing.csv"))

    assert "snapshot real_001 created: 5 symbols" in capsys.readouterr().out
    assert list(DataSnapshot.objects.values_list("snapshot_id", flat=True)) == ["real_001"]
    assert stored_files(artifact_root) == ["snapshots/real_001/ohlcv.csv"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE research_datasnapshot SET sha256 = 'x' WHERE snapshot_id = 'small_snap'",
        "DELETE FROM research_datasnapshot WHERE snapshot_id = 'small_snap'",
    ],
)
def test_the_database_refuses_to_change_a_snapshot(small_snapshot, sql):
    with pytest.raises(DatabaseError, match="insert-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)

    row = DataSnapshot.objects.get(snapshot_id="small_snap")
    assert row.sha256 == small_snapshot.sha256
