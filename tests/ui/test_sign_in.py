"""Logging in and out of the /ui pages, and where an anonymous visitor is sent."""
import pytest

from ..builders import session_client

pytestmark = pytest.mark.django_db


def test_login_goes_to_the_page_asked_for_and_a_wrong_password_says_so(people):
    client = session_client()
    assert client.get("/ui/jobs?status=done")["Location"] == "/ui/login?next=/ui/jobs%3Fstatus%3Ddone"
    wrong = client.post("/ui/login", {"username": "rita", "password": "nope"})
    assert wrong.status_code == 200 and "Please enter a correct username and password" in wrong.content.decode()
    right = client.post("/ui/login", {"username": "rita", "password": "rita-pass-123", "next": "/ui/jobs?status=done"})
    assert right.status_code == 302 and right["Location"] == "/ui/jobs?status=done"
    # an outside `next` is not followed
    client.logout()
    away = client.post("/ui/login", {"username": "rita", "password": "rita-pass-123", "next": "https://evil.example/"})
    assert away["Location"] == "/ui/jobs"


def test_logout_is_a_post_and_says_so(people):
    client = session_client(people.reviewer)
    confirm = client.get("/ui/logout")
    assert confirm.status_code == 200 and 'action="/ui/logout"' in confirm.content.decode()
    assert client.get("/ui/jobs").status_code == 200  # a GET signed nobody out
    response = client.post("/ui/logout", follow=True)
    assert response.redirect_chain[-1] == ("/ui/login", 302)
    assert "You are signed out." in response.content.decode()
    assert client.get("/ui/jobs").status_code == 302
