"""How a test calls the service: an API client with a user's token, a browser-like client with a session, and
what to read back from their responses."""
import json

from django.contrib.messages import get_messages
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

ADMIN = "/admin/jobs/jobspec/"


def client_for(user=None) -> APIClient:
    """An API client that authenticates with the user's DRF token (or anonymous)."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def session_client(user=None, **options) -> Client:
    """A client signed in by session, as a browser is (or anonymous). The test client skips the CSRF check
    unless `enforce_csrf_checks=True`."""
    client = Client(**options)
    if user is not None:
        client.force_login(user)
    return client


def post_json(client, url: str, body=None, **extra):
    return client.generic("POST", url, json.dumps(body).encode(), content_type="application/json", **extra)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def job_page(job) -> str:
    """The admin's page of a job."""
    return f"{ADMIN}{job.job_id}/change/"


def texts(response) -> list[str]:
    """The messages a response leaves for the next page."""
    return [str(message) for message in get_messages(response.wsgi_request)]
