"""`GET /jobs/{id}/bundle` through real server processes (runserver and gunicorn): the same archive as the export, verifiable offline,
logged in the access log; refused reads write nothing."""
import urllib.error
import urllib.request

import pytest
from rest_framework.authtoken.models import Token

from jobs.bundles import archive_bytes
from jobs.models import ArtifactRead

from ..api.conftest import serving
from ..api.test_http_scenario import Client
from ..builders import a_user, exported, finished_jobs
from .conftest import verify_offline

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["runserver", "gunicorn"])
def test_the_bundle_is_served_to_readers_as_exported_and_logged(artifact_root, tiny_snapshot, people, process_env,
                                                               tmp_path, bare_python, kind):
    jobs = finished_jobs(people)
    job_id = jobs["idea"]
    expected = archive_bytes({job_id: exported([job_id])[job_id]})
    reader = Client("", Token.objects.create(user=a_user("alma")).key)
    with serving(kind, process_env, tmp_path) as base:
        reader.base = base
        # when a reader asks for the bundle
        status, headers, content = reader.call("GET", f"/jobs/{job_id}/bundle")

        # then it is the exported archive, byte for byte, and it verifies offline
        assert status == 200 and headers["Content-Type"] == "application/gzip"
        assert content == expected
        (tmp_path / "served.tar.gz").write_bytes(content)
        done = verify_offline(bare_python, tmp_path / "served.tar.gz")
        assert done.returncode == 0 and done.stdout.startswith(f"OK {job_id}"), done.stdout + done.stderr
        # and the read is in the access log
        rows = list(ArtifactRead.objects.filter(job_id=job_id).values_list("who", "path", "via", "bytes"))
        assert rows == [("alma", "bundle.tar.gz", "bundle", len(expected))]

        # a 304 for the same ETag, someone not signed in, an unknown job and a malformed id: nothing logged
        reader_etag = headers["ETag"]
        request = urllib.request.Request(f"{base}/jobs/{job_id}/bundle", headers={
            "Authorization": f"Token {reader.token}", "If-None-Match": reader_etag})
        try:
            urllib.request.urlopen(request, timeout=60)
            not_modified = 200
        except urllib.error.HTTPError as error:
            not_modified = error.code
        assert not_modified == 304
        assert Client(base, None).call("GET", f"/jobs/{job_id}/bundle")[0] in (401, 403)
        assert reader.call("GET", "/jobs/0123456789ab/bundle")[0] == 404
        assert reader.call("GET", "/jobs/NOT-AN-ID/bundle")[0] == 404
        assert reader.call("GET", f"/jobs/{job_id}/bundle?x=1")[0] == 400
    assert ArtifactRead.objects.count() == 1
