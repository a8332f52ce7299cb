"""Claims under real concurrency: several run_jobs processes, overlapping passes, a worker killed mid-step."""
import collections
import signal
import time

import pytest

from jobs.models import JobEvent, JobState

from ..builders import SUBMITTER, TINY_RUN, TINY_SNAPSHOT, a_blueprint, a_snapshot, approve_waiting, submitted
from .conftest import REPO_ROOT, a_run_killed_mid_step, events_of, executions, run_jobs, start_run_jobs

STEPS = ("compile", "run", "gates", "registry")
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def recording_env(process_env, log_path, **extra):
    env = dict(process_env)
    env["EAM_STEP_EXECUTORS"] = ",".join(f"{s}=tests.workflow.instrumented.recording" for s in STEPS)
    env["EAM_TEST_EXECUTION_LOG"] = str(log_path)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def many_blueprints(count):
    """`count` jobs; pairs share a runspec (same strategy, other name), so shared dossiers are written concurrently."""
    out = []
    for i in range(count):
        k = i // 2
        params = {"fast": 2 + k % 20, "slow": 25 + k // 20}
        out.append(a_blueprint("sma_crossover", params, name=f"job {i}"))
    return out


def finish_all(procs, timeout=300):
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append((proc.returncode, out, err))
    return results


def assert_each_step_once(log_path, job_ids, steps):
    counts = collections.Counter(executions(log_path))
    expected = {(job_id, step) for job_id in job_ids for step in steps}
    assert set(counts) == expected
    assert [k for k, n in counts.items() if n != 1] == []
    completions = collections.Counter(
        JobEvent.objects.filter(job_id__in=job_ids, event_type__in=[
            "RUNSPEC_COMPILED", "RUN_COMPLETED", "GATES_COMPLETED", "REGISTRY_UPDATED",
        ]).values_list("job_id", "step")
    )
    assert set(completions) == expected and set(completions.values()) == {1}


def test_four_workers_over_200_jobs_run_every_step_exactly_once(process_env, tmp_path):
    a_snapshot(TINY_SNAPSHOT)
    jobs = [submitted(SUBMITTER, blueprint=bp, snapshot_id=TINY_SNAPSHOT) for bp in many_blueprints(200)]
    job_ids = [j.job_id for j in jobs]
    log = tmp_path / "executions.log"
    env = recording_env(process_env, log)

    for round_steps in (("compile",), STEPS[1:]):
        procs = [start_run_jobs(env, "--once", "--worker-id", f"w{n}") for n in range(4)]
        for code, out, err in finish_all(procs):
            assert code == 0, err
            assert "Traceback" not in err
        if round_steps == ("compile",):
            assert JobState.objects.filter(job_id__in=job_ids, status="waiting_approval").count() == 200
            approve_waiting(job_ids)
    assert JobState.objects.filter(job_id__in=job_ids, status="done").count() == 200
    assert_each_step_once(log, job_ids, STEPS)
    workers = set(JobEvent.objects.filter(event_type="STEP_STARTED").values_list("actor__id", flat=True))
    assert len(workers) > 1, "the work should have been shared"
    assert run_jobs(process_env, "--once").returncode == 0
    verify = run_jobs_verify(process_env)
    assert verify.returncode == 0, verify.stdout


def run_jobs_verify(env):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "manage.py", "verify_events"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_two_overlapping_once_passes_do_not_duplicate_steps(process_env, tmp_path):
    a_snapshot(TINY_SNAPSHOT)
    jobs = [submitted(SUBMITTER, blueprint=bp, snapshot_id=TINY_SNAPSHOT) for bp in many_blueprints(30)]
    job_ids = [j.job_id for j in jobs]
    log = tmp_path / "executions.log"
    env = recording_env(process_env, log)
    for phase in range(2):
        results = finish_all([start_run_jobs(env, "--once") for _ in range(2)])
        assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
        assert all("Traceback" not in err for _, _, err in results)
        if phase == 0:
            approve_waiting(job_ids)
    assert JobState.objects.filter(job_id__in=job_ids, status="done").count() == 30
    assert_each_step_once(log, job_ids, STEPS)


def test_worker_killed_mid_step_is_recovered_after_its_lease(process_env, tmp_path):
    job = a_run_killed_mid_step(process_env, tmp_path / "executions.log")
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.lease_owner) == ("running", "victim")
    # a pass before the lease expires finds nothing to do; after it, the job is taken over and finished
    time.sleep(2.5)
    rescue = run_jobs(process_env, "--once", "--worker-id", "rescuer")
    assert rescue.returncode == 0, rescue.stderr
    state.refresh_from_db()
    assert state.status == "done"
    starts = JobEvent.objects.filter(job_id=job.job_id, event_type="STEP_STARTED", step="run").order_by("seq")
    assert [(e.payload["worker"], e.payload["attempt"], e.payload["recovered_from"]) for e in starts] == [
        ("victim", 1, None), ("rescuer", 2, "victim"),
    ]
    assert [e for e in events_of(job.job_id) if e == "RUN_COMPLETED"] == ["RUN_COMPLETED"]
    assert events_of(job.job_id)[-1] == "DONE"
    verify = run_jobs_verify(process_env)
    assert verify.returncode == 0, verify.stdout


def test_a_step_longer_than_its_lease_keeps_it_while_its_worker_lives(process_env, tmp_path):
    # given an approved job whose run step takes 4 s, run by a worker with a 1 s lease
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)
    assert run_jobs(process_env, "--once").returncode == 0
    approve_waiting([job.job_id])
    log = tmp_path / "executions.log"
    slow_env = dict(process_env, EAM_STEP_EXECUTORS="run=tests.workflow.instrumented.slow",
                    EAM_TEST_EXECUTION_LOG=str(log), EAM_TEST_SLOW_SECONDS="4")
    owner = start_run_jobs(slow_env, "--once", "--worker-id", "owner", "--lease-seconds", "1")
    deadline = time.monotonic() + 60
    while not executions(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert executions(log) == [(job.job_id, "run")], "the slow step never started"
    # when other workers keep trying while the step runs, long after its first lease expired
    rivals = []
    while owner.poll() is None:
        rivals.append(run_jobs(process_env, "--once", "--worker-id", f"rival-{len(rivals)}"))
    # then none of them took the step over: it ran once, by its owner, and the job is done
    assert owner.returncode == 0, owner.stderr.read() if owner.stderr else ""
    assert len(rivals) >= 2 and all(r.returncode == 0 for r in rivals)
    assert executions(log) == [(job.job_id, "run")]
    starts = JobEvent.objects.filter(job_id=job.job_id, event_type="STEP_STARTED").order_by("seq")
    assert [(e.step, e.payload["worker"], e.payload["recovered_from"]) for e in starts][1:] == [
        ("run", "owner", None), ("gates", "owner", None), ("registry", "owner", None),
    ]
    assert JobState.objects.get(job_id=job.job_id).status == "done"


def test_a_loop_worker_picks_up_new_work_and_stops_on_sigterm(process_env, request):
    # given a worker in loop mode on an empty database
    a_snapshot(TINY_SNAPSHOT)
    worker = start_run_jobs(process_env, "--interval", "0.05", "--worker-id", "looper")
    request.addfinalizer(lambda: stop(worker))
    time.sleep(1.5)
    assert worker.poll() is None, worker.stderr.read()
    # when a job is submitted, then it reaches the checkpoint; after approval it finishes, with no new process
    job = submitted(SUBMITTER, **TINY_RUN)
    wait_until(lambda: JobState.objects.get(job_id=job.job_id).status == "waiting_approval")
    approve_waiting([job.job_id])
    wait_until(lambda: JobState.objects.get(job_id=job.job_id).status == "done")
    # and SIGTERM ends it cleanly
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "Traceback" not in err
    assert {e.payload["worker"] for e in JobEvent.objects.filter(job_id=job.job_id, event_type="STEP_STARTED")} == {
        "looper"}


def stop(process):
    """A worker a failed test left running must not keep the test database open."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def wait_until(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_on_postgresql_an_idle_worker_wakes_on_a_submit_not_at_its_interval(process_env, request):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll every --interval")
    # given a loop worker that would otherwise sleep 60 s between polls, idle past its first poll
    a_snapshot(TINY_SNAPSHOT)
    worker = start_run_jobs(process_env, "--interval", "60", "--worker-id", "listener")
    request.addfinalizer(lambda: stop(worker))
    time.sleep(2.5)
    assert worker.poll() is None, worker.stderr.read()
    # when a job is submitted, then it is compiled within seconds, not after a minute
    submitted_at = time.monotonic()
    job = submitted(SUBMITTER, **TINY_RUN)
    wait_until(lambda: JobState.objects.get(job_id=job.job_id).status == "waiting_approval", timeout=20)
    assert time.monotonic() - submitted_at < 20
    # and an approval wakes it too; SIGTERM while idle stops it at once
    approve_waiting([job.job_id])
    wait_until(lambda: JobState.objects.get(job_id=job.job_id).status == "done", timeout=20)
    stop_asked = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert time.monotonic() - stop_asked < 10


def test_sigterm_stops_claiming_at_once_and_the_step_in_flight_finishes(process_env, tmp_path, request):
    # given 50 queued jobs and a loop worker whose steps each take a second
    a_snapshot(TINY_SNAPSHOT)
    jobs = [submitted(SUBMITTER, blueprint=bp, snapshot_id=TINY_SNAPSHOT) for bp in many_blueprints(50)]
    log = tmp_path / "executions.log"
    slow_env = recording_env(process_env, log)
    slow_env["EAM_STEP_EXECUTORS"] = ",".join(f"{s}=tests.workflow.instrumented.slow" for s in STEPS)
    slow_env["EAM_TEST_SLOW_SECONDS"] = "1"
    worker = start_run_jobs(slow_env, "--interval", "0.05", "--worker-id", "stopping", "--grace-seconds", "20")
    request.addfinalizer(lambda: stop(worker))
    wait_until(lambda: len(executions(log)) >= 1)

    # when it is sent SIGTERM in the middle of a step
    worker.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = worker.communicate(timeout=30)

    # then it exits 0 within the grace period, having started no step after the signal but the one in flight
    assert worker.returncode == 0, err
    assert time.monotonic() - sent < 20
    assert "claiming no more work" in err and "Traceback" not in err
    ran = executions(log)
    assert len(ran) <= 2, ran  # the step in flight (and at most one that started as the signal arrived)
    assert not JobState.objects.filter(lease_owner="stopping", lease_expires_at__isnull=False).exists()

    # and another worker completes everything, with no step executed twice
    again = run_jobs(recording_env(process_env, log), "--once", "--worker-id", "after")
    assert again.returncode == 0, again.stderr
    approve_waiting([j.job_id for j in jobs])
    again = run_jobs(recording_env(process_env, log), "--once", "--worker-id", "after")
    assert again.returncode == 0, again.stderr
    assert set(JobState.objects.filter(job_id__in=[j.job_id for j in jobs]).values_list("status", flat=True)) == {"done"}
    assert_each_step_once(log, [j.job_id for j in jobs], STEPS)


def test_a_step_past_the_grace_period_fails_as_worker_stopped_and_is_taken_on(process_env, tmp_path, request):
    # given a loop worker in the middle of a step that takes a minute
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, **TINY_RUN)
    log = tmp_path / "executions.log"
    slow_env = recording_env(process_env, log)
    slow_env["EAM_STEP_EXECUTORS"] = "compile=tests.workflow.instrumented.slow"
    slow_env["EAM_TEST_SLOW_SECONDS"] = "60"
    worker = start_run_jobs(slow_env, "--interval", "0.05", "--worker-id", "stuck", "--grace-seconds", "1")
    request.addfinalizer(lambda: stop(worker))
    wait_until(lambda: len(executions(log)) == 1)

    # when it is sent SIGTERM
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)

    # then the step is stopped after the grace period: an event says why and the lease is released
    assert worker.returncode == 0, err
    failed = JobEvent.objects.get(job_id=job.job_id, event_type="STEP_FAILED")
    assert (failed.step, failed.payload["error_class"], failed.payload["retryable"]) == ("compile", "worker_stopped", True)
    state = JobState.objects.get(job_id=job.job_id)
    assert (state.status, state.lease_owner) == ("queued", None)
