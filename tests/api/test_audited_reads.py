"""Audited reads: every artifact download appends one row to the access log, and only a download does; a read
that cannot be logged is not served; operators list the log at GET /audit/reads and in the admin."""
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
import structlog
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.authtoken.models import Token

from contracts import sha256_hex
from jobs import access
from jobs.models import ArtifactRead

from ..builders import a_user, assert_error, client_for, ran_job, session_client
from .conftest import serving

pytestmark = pytest.mark.django_db

RUNSPEC = "outputs/runspec.json"


def reads() -> list[ArtifactRead]:
    return list(ArtifactRead.objects.order_by("id"))


def download(client, job_id: str, path: str = RUNSPEC, **headers):
    return client.get(f"/jobs/{job_id}/artifacts/{path}", **headers)


@pytest.fixture
def ran(people):
    """A job whose run completed: its runspec and its run's dossier are there to download."""
    job, run_id = ran_job(people.submitter, people.reviewer, "audited")
    return job, run_id


# -- what a download writes ----------------------------------------------------------------------------------

def test_a_download_appends_one_row_with_who_what_and_the_request_id(people, ran):
    job, _ = ran
    before = timezone.now() - timedelta(seconds=5)
    events = job.events.count()

    # when a reader downloads the runspec under a request id of their own
    response = download(client_for(people.nobody), job.job_id, HTTP_X_REQUEST_ID="req-2026-audit.1")

    # then exactly one row names who, what, the bytes served and the request
    assert response.status_code == 200
    (row,) = reads()
    assert (row.who, row.job_id, row.path, row.storage_path) == (
        "nina", job.job_id, RUNSPEC, f"jobs/{job.job_id}/{RUNSPEC}")
    assert row.sha256 == sha256_hex(response.content) and row.bytes == len(response.content)
    assert row.request_id == "req-2026-audit.1" and row.via == "api"
    assert before <= row.at <= timezone.now() + timedelta(seconds=5)
    # and nothing about it entered the job's event chain
    assert job.events.count() == events


def test_a_dossier_download_is_logged_with_the_path_asked_and_where_it_was_read(people, ran):
    job, run_id = ran
    response = download(client_for(people.reviewer), job.job_id, "dossier/metrics.json")
    assert response.status_code == 200
    (row,) = reads()
    assert (row.who, row.path, row.storage_path) == ("rita", "dossier/metrics.json", f"dossiers/{run_id}/metrics.json")
    assert row.sha256 == sha256_hex(response.content)


def test_each_download_is_a_row_and_a_request_without_a_usable_id_gets_a_new_one(people, ran):
    job, _ = ran
    client = client_for(people.operator)
    assert download(client, job.job_id).status_code == 200
    assert download(client, job.job_id, HTTP_X_REQUEST_ID="not a plain token; <script>").status_code == 200
    first, second = reads()
    assert first.request_id != second.request_id
    for row in (first, second):
        assert len(row.request_id) == 32 and int(row.request_id, 16) >= 0  # uuid4 hex


def test_the_request_id_bound_for_the_logs_is_the_one_recorded():
    request = RequestFactory().get("/", HTTP_X_REQUEST_ID="from-the-client")
    assert access.request_id(request) == "from-the-client"
    with structlog.contextvars.bound_contextvars(request_id="bound-by-the-server"):
        assert access.request_id(request) == "bound-by-the-server"


def test_an_anonymous_download_under_public_read_is_logged_as_anonymous(people, ran, settings):
    settings.EAM_PUBLIC_READ = True
    job, _ = ran
    assert download(client_for(None), job.job_id).status_code == 200
    assert [(r.who, r.path) for r in reads()] == [("anonymous", RUNSPEC)]


# -- what writes nothing -----------------------------------------------------------------------------------------

def test_a_304_and_a_head_serve_no_bytes_and_write_no_row(people, ran):
    job, _ = ran
    client = client_for(people.reviewer)
    etag = download(client, job.job_id)["ETag"]
    assert len(reads()) == 1

    assert download(client, job.job_id, HTTP_IF_NONE_MATCH=etag).status_code == 304
    head = client.head(f"/jobs/{job.job_id}/artifacts/{RUNSPEC}")
    assert head.status_code == 200 and head.content == b""
    assert len(reads()) == 1


def test_a_missing_hidden_or_unsafe_path_and_an_unknown_job_write_no_row(people, ran):
    job, _ = ran
    client = client_for(people.reviewer)
    assert_error(download(client, job.job_id, "outputs/nothing.json"), 404, "artifact_not_found")
    assert_error(download(client, job.job_id, "dossier/segments/holdout/curve.csv"), 404, "holdout_hidden")
    assert_error(download(client, "0" * 12), 404, "job_not_found")
    assert download(client, job.job_id, "outputs/.hidden.json").status_code == 404
    assert download(client, job.job_id, "outputs/a%20b.json").status_code == 400
    assert reads() == []


def test_a_refused_download_writes_no_row(people, ran):
    job, _ = ran
    assert_error(download(client_for(None), job.job_id), 401, "not_authenticated")
    wrong = client_for(None)
    wrong.credentials(HTTP_AUTHORIZATION="Token " + "f" * 40)
    assert_error(download(wrong, job.job_id), 401, "authentication_failed")
    assert reads() == []


def test_a_read_the_database_will_not_log_is_not_served(people, ran):
    # given a database that refuses the access log's insert (the guards' own refusal, put on INSERT)
    job, _ = ran
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("CREATE TRIGGER refuse_reads BEFORE INSERT ON jobs_artifactread "
                           "FOR EACH ROW EXECUTE FUNCTION eam_guard_refuse()")
        else:
            cursor.execute("CREATE TRIGGER refuse_reads BEFORE INSERT ON jobs_artifactread "
                           "BEGIN SELECT RAISE(ABORT, 'jobs_artifactread refuses inserts'); END")

    # when the runspec is asked for, then 503 and none of its bytes
    response = download(client_for(people.reviewer), job.job_id)
    body = assert_error(response, 503, "read_not_logged")
    assert b'"strategy"' not in response.content and "ETag" not in response
    assert body["detail"].startswith("the read cannot be logged")
    assert reads() == []


# -- GET /audit/reads ---------------------------------------------------------------------------------------------

def test_operators_list_the_reads_with_filters_and_cursor_pages(people, ran):
    # given reads by two people of two jobs
    job, _ = ran
    other, _ = ran_job(people.submitter, people.reviewer, "audited-other")
    for reader in (people.reviewer, people.nobody, people.reviewer):
        assert download(client_for(reader), job.job_id).status_code == 200
    assert download(client_for(people.reviewer), other.job_id, "dossier/metrics.json").status_code == 200
    operator = client_for(people.operator)

    # when an operator pages through the log, then every read comes once, oldest first
    seen, cursor = [], None
    while True:
        page = operator.get("/audit/reads", {"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += page["results"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [(r["who"], r["job_id"], r["path"]) for r in seen] == [
        ("rita", job.job_id, RUNSPEC), ("nina", job.job_id, RUNSPEC), ("rita", job.job_id, RUNSPEC),
        ("rita", other.job_id, "dossier/metrics.json")]
    first = seen[0]
    assert set(first) == {"id", "who", "job_id", "path", "storage_path", "sha256", "bytes", "at", "request_id", "via"}
    assert first["at"].endswith("Z") and first["via"] == "api"

    def listed(**query):
        response = operator.get("/audit/reads", query)
        assert response.status_code == 200, response.content
        return [(r["who"], r["job_id"]) for r in response.json()["results"]]

    assert listed(who="nina") == [("nina", job.job_id)]
    assert listed(job_id=other.job_id) == [("rita", other.job_id)]
    assert listed(job_id=job.job_id, who="rita") == [("rita", job.job_id)] * 2
    assert len(listed(since=first["at"])) == 4
    assert listed(since=(timezone.now() + timedelta(hours=1)).isoformat()) == []
    assert listed(who="nobody-at-all") == []


def test_the_log_is_for_operators_only(people, ran):
    job, _ = ran
    download(client_for(people.reviewer), job.job_id)
    before = len(reads())

    assert_error(client_for(None).get("/audit/reads"), 401, "not_authenticated")
    for person in (people.submitter, people.reviewer, people.nobody):
        assert_error(client_for(person).get("/audit/reads"), 403, "permission_denied")
    for person in (people.operator, people.superuser):
        assert len(client_for(person).get("/audit/reads").json()["results"]) == 1
    # the model's view permission, granted to one person, opens it too
    auditor = a_user("audrey")
    auditor.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_artifactread"))
    assert client_for(auditor).get("/audit/reads").status_code == 200
    # and reading the log is not itself a read of an artifact
    assert len(reads()) == before


@pytest.mark.parametrize("query, pointer", [
    ({"since": "yesterday"}, "/since"), ({"job_id": "../etc"}, "/job_id"), ({"limit": 0}, "/limit"),
    ({"cursor": "bm90LWEtY3Vyc29y"}, "/cursor"), ({"path": "x"}, "/path"),
])
def test_a_bad_query_is_a_400_with_a_pointer(people, query, pointer):
    body = assert_error(client_for(people.operator).get("/audit/reads", query), 400,
                        "invalid_cursor" if pointer == "/cursor" else "invalid_query")
    assert body["errors"][0]["path"] == pointer


# -- the admin --------------------------------------------------------------------------------------------------

def test_the_admin_lists_reads_to_operators_and_changes_nothing(people, ran):
    job, _ = ran
    download(client_for(people.reviewer), job.job_id)
    row = reads()[0]
    changelist, page = "/admin/jobs/artifactread/", f"/admin/jobs/artifactread/{row.id}/change/"
    operator = a_user("oscar", "operators", staff=True)
    client = session_client(operator)

    listed = client.get(changelist, {"q": "runspec"})
    assert listed.status_code == 200 and RUNSPEC.encode() in listed.content
    assert client.get(changelist, {"who": "rita", "job_id": job.job_id}).status_code == 200
    shown = client.get(page)
    assert shown.status_code == 200 and row.sha256.encode() in shown.content
    assert client.get("/admin/jobs/artifactread/add/").status_code == 403
    assert client.post(page, {"who": "mallory"}).status_code == 403
    assert client.post(f"/admin/jobs/artifactread/{row.id}/delete/", {"post": "yes"}).status_code == 403
    # a reviewer in the admin does not see who read what
    assert session_client(a_user("ria", "reviewers", staff=True)).get(changelist).status_code == 403
    assert [(r.who, r.sha256) for r in reads()] == [("rita", row.sha256)]


# -- over a real server --------------------------------------------------------------------------------------------

def _get(url: str, token: str, **headers) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}", **headers})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["runserver", "gunicorn"])
def test_a_download_over_a_real_server_is_logged(artifact_root, process_env, tmp_path, people, kind):
    job, _ = ran_job(people.submitter, people.reviewer, f"audited over {kind}")
    reader = Token.objects.create(user=people.nobody).key
    with serving(kind, process_env, tmp_path) as base:
        url = f"{base}/jobs/{job.job_id}/artifacts/{RUNSPEC}"
        status, headers, content = _get(url, reader, **{"X-Request-ID": f"over-{kind}-1"})
        assert status == 200
        assert _get(url, reader, **{"If-None-Match": headers["ETag"]})[0] == 304
        assert _get(f"{base}/jobs/{job.job_id}/artifacts/outputs/nothing.json", reader)[0] == 404
        status, _, listed = _get(f"{base}/audit/reads", Token.objects.create(user=people.operator).key)
        assert status == 200 and f"over-{kind}-1".encode() in listed

    (row,) = reads()
    assert (row.who, row.path, row.request_id, row.via) == ("nina", RUNSPEC, f"over-{kind}-1", "api")
    assert (row.sha256, row.bytes) == (sha256_hex(content), len(content))
