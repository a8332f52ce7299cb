"""Notifications from real processes: the worker (run_jobs) tells the receiver a job waits, and overlapping
`manage.py notify --once` passes plan and send each delivery exactly once."""
import collections
import signal
import subprocess
import sys
import time

import pytest

from jobs.models import JobState
from notifications.models import Delivery, DeliveryAttempt

from ..builders import (
    SECRET, SUBMITTER, TINY_RUN, TINY_SNAPSHOT, Reply, a_snapshot, a_webhook_receiver, hook_env, submitted,
    waiting_job,
)
from ..conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def manage(env, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    return out


def stop(process):
    """A worker a failed test left running must not keep the test database open."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture
def child_env(process_env):
    # E-mail in the child processes stays in memory: the webhook receiver counts what was sent.
    return {**process_env, "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}


def test_the_worker_tells_the_receiver_that_a_job_waits(child_env):
    # given a job submitted, and a worker with a webhook to a receiver on loopback
    a_snapshot(TINY_SNAPSHOT)
    job = submitted(SUBMITTER, "told by the worker", **TINY_RUN)
    with a_webhook_receiver() as receiver:
        # when one worker pass runs: compile, then the runspec checkpoint waits
        out = finish(manage(hook_env(child_env, receiver.url), "run_jobs", "--once"))

    # then the receiver got the waiting notification, signed, and the delivery is recorded
    assert JobState.objects.get(job_id=job.job_id).status == "waiting_approval"
    assert "notifications: 1 planned, 1 delivered" in out
    [request] = receiver.requests
    assert request.body["kind"] == "waiting" and request.body["job"]["job_id"] == job.job_id
    assert request.body["job"]["title"] == "told by the worker"
    import hashlib
    import hmac

    timestamp = request.headers["x-eam-timestamp"]
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.raw, hashlib.sha256).hexdigest()
    assert request.headers["x-eam-signature"] == f"sha256={mac}"
    delivery = Delivery.objects.get(channel="webhook")
    assert delivery.status == "delivered"
    assert list(DeliveryAttempt.objects.values_list("number", "outcome", "http_status")) == [(1, "delivered", 200)]


def test_a_loop_worker_retries_a_failed_webhook_on_a_later_pass(child_env, request):
    # given a loop worker whose receiver answers 500 twice, then 200, with short retry delays
    a_snapshot(TINY_SNAPSHOT)
    with a_webhook_receiver(500, 500) as receiver:
        env = {**hook_env(child_env, receiver.url), "EAM_NOTIFY_RETRY_SECONDS": "0.2"}
        worker = manage(env, "run_jobs", "--interval", "0.1", "--worker-id", "looper")
        request.addfinalizer(lambda: stop(worker))

        # when a job is submitted and reaches its checkpoint
        job = submitted(SUBMITTER, "retried by the loop", **TINY_RUN)

        # then the loop's later passes try again until the third attempt is delivered, without a new process
        deadline = time.monotonic() + 60
        while not Delivery.objects.filter(channel="webhook", status="delivered").exists():
            assert time.monotonic() < deadline and worker.poll() is None, "not delivered"
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0 and "Traceback" not in err, err
    assert JobState.objects.get(job_id=job.job_id).status == "waiting_approval"
    delivery = Delivery.objects.get(channel="webhook")
    assert list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("number", "outcome", "http_status")) \
        == [(1, "retry", 500), (2, "retry", 500), (3, "delivered", 200)]
    assert len(receiver.requests) == 3


def test_overlapping_notify_passes_plan_and_send_each_delivery_once(child_env, people):
    # given 12 jobs waiting (each: one webhook delivery, one e-mail to the superuser who has an address)
    jobs = [waiting_job(people.submitter, f"overlap {i}") for i in range(12)]
    with a_webhook_receiver() as receiver:
        receiver.script(*[Reply(status=200, body=b"", delay=0.25) for _ in jobs])  # slow enough to overlap
        env = hook_env(child_env, receiver.url)

        # when three `notify --once` processes run at the same time
        outputs = [finish(p) for p in [manage(env, "notify", "--once") for _ in range(3)]]

    # then every delivery was planned once and sent once
    deliveries = Delivery.objects.all()
    assert deliveries.filter(channel="webhook").count() == len(jobs)
    assert deliveries.filter(channel="email").count() == len(jobs)
    assert set(deliveries.values_list("status", flat=True)) == {"delivered"}
    assert set(deliveries.values_list("attempts", flat=True)) == {1}
    assert DeliveryAttempt.objects.count() == 2 * len(jobs)
    sent = collections.Counter(r.headers["x-eam-delivery"] for r in receiver.requests)
    assert len(sent) == len(jobs) and set(sent.values()) == {1}
    assert {r.body["job"]["job_id"] for r in receiver.requests} == {j.job_id for j in jobs}
    planned = sum(int(out.split(" planned")[0].split()[-1]) for out in outputs)
    assert planned == 2 * len(jobs)
