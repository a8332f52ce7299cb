"""`make demo`'s command: the demo snapshot, two example blueprints (one PASS, one FAIL, both DONE), then an idea
job through its five checkpoints whose spawn the demo budget stops, its children run to DONE, and the lineage."""
import re

import pytest
from django.core.management import call_command

from jobs.models import JobEvent, JobSpec, JobState

IDEA_CHECKPOINTS = ("blueprint", "strategy_spec", "runspec", "trace_preview", "improvements")


@pytest.mark.django_db
def test_demo_ends_with_one_pass_and_one_fail_then_an_idea_stopped_by_its_budget(capsys):
    call_command("demo")
    out = capsys.readouterr().out
    assert "for this demo only" in out
    table = out[out.index("verdict"):out.index("== an idea job")]
    rows = [line for line in table.splitlines() if " done " in line]
    assert len(rows) == 2
    assert sum(" PASS " in row for row in rows) == 1
    assert sum(" FAIL " in row for row in rows) == 1

    # the idea job passed its five checkpoints, approved by the demo reviewer, and its spawn hit the budget
    idea = JobSpec.objects.get(kind="idea")
    approved = JobEvent.objects.filter(job=idea, event_type="APPROVED").order_by("seq")
    assert [e.step for e in approved] == list(IDEA_CHECKPOINTS)
    assert {e.actor["id"] for e in approved} == {"demo-reviewer"}
    assert idea.state.status == "stopped_budget"
    stop = JobEvent.objects.get(job=idea, event_type="STOPPED_BUDGET")
    assert stop.payload["reason"] == "max_jobs_per_root"
    assert f"job {idea.job_id} ended stopped_budget: max_jobs_per_root reached" in out
    # and the demo reviewer asked for the report again afterwards: evidence only, the job stays stopped_budget
    rerun = JobEvent.objects.get(job=idea, event_type="RERUN_COMPLETED")
    assert (rerun.payload["agent_id"], rerun.payload["changed"]) == ("report", False)
    assert f"rerun of report {rerun.payload['rerun_id']} by demo-reviewer: completed, changed false" in out
    idea.state.refresh_from_db()
    assert idea.state.status == "stopped_budget"

    # the children ran to DONE, and the lineage is printed as a tree from the root
    children = JobSpec.objects.filter(parent_job_id=idea.job_id).order_by("created_at", "job_id")
    assert children.count() == 2
    assert set(JobState.objects.filter(job__in=children).values_list("status", flat=True)) == {"done"}
    tree = out[out.index("== lineage"):].splitlines()[1:4]
    assert tree[0].startswith(f"{idea.job_id}  stopped_budget")
    assert [re.match(r"[├└]─ ([0-9a-f]{12})  done ", line).group(1) for line in tree[1:]] == \
        [c.job_id for c in children]
    assert set(JobState.objects.exclude(job=idea).values_list("status", flat=True)) == {"done"}
