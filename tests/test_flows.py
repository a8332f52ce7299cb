"""docs/architecture.md draws two flows as `file: function` lines: an approval from its URL to the inserted
event, and one worker step from its claim to its result event. These tests keep that drawing true: every
named function exists, and tracing the real flow crosses exactly the files drawn, no more."""
import importlib
import re
import sys

import pytest

from jobs.models import JobEvent
from workflow.orchestrator import WorkerConfig, run_pass

from .builders import MONTH, SNAPSHOT, a_snapshot, client_for, submitted, waiting_job
from .conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "architecture.md"
MOST_FILES = 6


def drawn(flow: str) -> dict[str, list[str]]:
    """{file: [function, ...]} of the flow's lines in docs/architecture.md, in order."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(rf"<!-- flow: {flow} -->\n(.*?)<!-- end flow -->", text, re.S)
    assert block, f"docs/architecture.md draws no flow {flow!r}"
    lines = re.findall(r"^\d+\. `([^`]+)`: (.+)$", block.group(1), re.M)
    return {path: re.findall(r"`([^`]+)`", names) for path, names in lines}


def project_files_crossed(action) -> list[str]:
    """The project's own files (tests excluded, and eam_site/, which wraps every request alike: request ids and
    the request's log line) whose code runs during `action`, in order of first entry."""
    root = str(REPO_ROOT) + "/"
    seen: list[str] = []

    def profile(frame, event, arg):
        if event == "call":
            name = frame.f_code.co_filename
            if name.startswith(root) and "/.venv/" not in name and not name.startswith((root + "tests/",
                                                                                        root + "eam_site/")):
                relative = name[len(root):]
                if relative not in seen:
                    seen.append(relative)

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return seen


@pytest.mark.parametrize("flow", ["approve", "worker step"])
def test_every_function_drawn_exists(flow):
    for path, names in drawn(flow).items():
        module = importlib.import_module(path.removesuffix(".py").replace("/", ".").removesuffix(".__init__"))
        for name in names:
            target = module
            for part in name.split("."):
                target = getattr(target, part)  # AttributeError: the drawing names what is not there
            assert callable(target), f"{path}: {name} is not a function"


@pytest.mark.parametrize("flow", ["approve", "worker step"])
def test_each_flow_crosses_at_most_six_files(flow):
    assert len(drawn(flow)) <= MOST_FILES


@pytest.mark.django_db
def test_an_approval_crosses_the_files_drawn(people):
    a_snapshot(SNAPSHOT, span=MONTH)
    job = waiting_job(people.submitter, "flow")
    client = client_for(people.reviewer)
    client.get("/jobs")  # the first request of a process loads the URL conf and the views

    def approve():
        response = client.post(f"/jobs/{job.job_id}/approve?step=runspec", {"comment": "fine"}, format="json")
        assert response.status_code == 200, response.content

    crossed = project_files_crossed(approve)
    assert JobEvent.objects.filter(job_id=job.job_id, event_type="APPROVED").count() == 1
    after_insert = {"jobs/selectors.py"}  # the answer shows the inserted event: after the flow drawn
    assert [f for f in crossed if f not in after_insert] == list(drawn("approve"))


@pytest.mark.django_db
def test_a_worker_step_crosses_the_files_drawn(settings, people):
    settings.EAM_STEP_EXECUTORS = {"compile": "tests.workflow.instrumented.noop"}  # the engine alone
    a_snapshot(SNAPSHOT, span=MONTH)
    job = submitted(people.submitter, "flow step")
    config = WorkerConfig("flow-worker", 300, 3, 5.0)
    crossed = project_files_crossed(lambda: run_pass(config, job_ids=[job.job_id], max_steps=1))
    assert JobEvent.objects.filter(job_id=job.job_id, event_type="RUNSPEC_COMPILED").count() == 1
    assert crossed == list(drawn("worker step"))
