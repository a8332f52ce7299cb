"""Property-based check of the API against its own OpenAPI schema (schemathesis over the WSGI app).

For every operation, generated requests (valid and invalid) as a superuser must never give a 500 and every
response must match what the schema documents: status code, content type, headers and body.
"""
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_headers_conformance, response_schema_conformance, status_code_conformance,
)

from ..builders import client_for, error_job, ran_job, waiting_job

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture
def api_schema(db, people, settings):
    settings.EAM_DEFAULT_SNAPSHOT_ID = "api_snap"
    # As Django's test client does: the test's transaction must outlive each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema", get_wsgi_application())
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def superuser_headers(people):
    # Jobs in each state, so that list, registry, snapshot and run reads have something to show.
    waiting_job(people.submitter, "schema-waiting")
    error_job(people.submitter, "schema-error")
    ran_job(people.submitter, people.reviewer, "schema-ran")
    token = client_for(people.superuser)._credentials["HTTP_AUTHORIZATION"]
    return {"Authorization": token}


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, superuser_headers):
    case.call_and_validate(headers=superuser_headers, checks=CHECKS)


def test_schema_documents_every_operation(db):
    from rest_framework.test import APIClient

    paths = APIClient().get("/api/schema").json()["paths"]
    operations = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert operations == {
        ("POST", "/jobs"), ("GET", "/jobs"), ("POST", "/jobs/blueprint"), ("POST", "/jobs/idea"),
        ("GET", "/jobs/{job_id}"), ("GET", "/jobs/{job_id}/events"), ("GET", "/jobs/{job_id}/artifacts"),
        ("GET", "/jobs/{job_id}/artifacts/{path}"), ("POST", "/jobs/{job_id}/approve"),
        ("POST", "/jobs/{job_id}/reject"), ("POST", "/jobs/{job_id}/override"), ("POST", "/jobs/{job_id}/retry"),
        ("POST", "/jobs/{job_id}/cancel"),
        ("GET", "/jobs/{job_id}/lineage"), ("POST", "/jobs/{job_id}/spawn"), ("POST", "/jobs/{job_id}/rerun"),
        ("GET", "/runs/{run_id}"), ("GET", "/registry"), ("GET", "/snapshots"), ("GET", "/policies"),
        ("GET", "/jobs/{job_id}/bundle"), ("GET", "/audit/reads"), ("GET", "/healthz"),
    }
    for path, item in paths.items():
        for method, operation in item.items():
            if path != "/healthz":
                assert {"400", "401", "403", "404"} <= set(operation["responses"]), (method, path)
