"""`make demo`'s command: the demo snapshot, two example blueprints, one PASS and one FAIL, every job DONE."""
import pytest
from django.core.management import call_command

from jobs.models import JobState


@pytest.mark.django_db
def test_demo_ends_with_one_pass_and_one_fail(capsys):
    call_command("demo")
    out = capsys.readouterr().out
    assert "for this demo only" in out
    table = out[out.index("verdict"):]
    rows = [line for line in table.splitlines() if " done " in line]
    assert len(rows) == 2
    assert sum(" PASS " in row for row in rows) == 1
    assert sum(" FAIL " in row for row in rows) == 1
    assert set(JobState.objects.values_list("status", flat=True)) == {"done"}
