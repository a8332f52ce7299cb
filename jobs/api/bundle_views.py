"""`GET /jobs/{job_id}/bundle`: the job's audit bundle (docs/audit.md) as the same reproducible .tar.gz that
`manage.py export_job --archive` writes. Readable by whoever may read the job's artifacts, and logged in the
access log as a read of the whole bundle (via `bundle`)."""
from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework.views import APIView

from contracts import sha256_hex
from jobs import access
from jobs.bundles import archive_bytes, bundle_files
from jobs.models import ArtifactRead
from jobs.services import check_job_id

from .http import NoQuery, not_modified, read_query
from .schema import IF_NONE_MATCH, JOB_ID, READS, error_responses

BUNDLE_PATH = "bundle.tar.gz"  # the path the access log names for a read of the whole bundle


class BundleApi(APIView):
    @extend_schema(
        operation_id="jobs_bundle", summary="Download the job's audit bundle (.tar.gz)", tags=["read"],
        description="Byte-identical to `manage.py export_job JOB_ID --archive FILE`; verify it offline with "
                    "`tools/verify_bundle.py`. Every download appends one row to the access log "
                    "(`GET /audit/reads`, via `bundle`).",
        parameters=[JOB_ID, IF_NONE_MATCH],
        responses={(200, "application/gzip"): OpenApiTypes.BINARY,
                   304: OpenApiResponse(description="If-None-Match names the bundle's ETag (its sha256)"),
                   **error_responses(*READS)},
    )
    def get(self, request, job_id=None):
        check_job_id(job_id)
        read_query(request, NoQuery)
        data = archive_bytes({job_id: bundle_files(job_id)})
        digest = sha256_hex(data)
        etag = f'"{digest}"'
        if not_modified(request, etag):
            response = HttpResponseNotModified()
        else:
            access.record_read(reader=access.Reader.of(request, via=ArtifactRead.Via.BUNDLE), job_id=job_id,
                               path=BUNDLE_PATH, storage_path=f"jobs/{job_id}", sha256=digest, size=len(data))
            response = HttpResponse(data, content_type="application/gzip")
            response["Content-Disposition"] = f'attachment; filename="{job_id}.tar.gz"'
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"
        return response
