"""The site as production serves it: gunicorn with a uvicorn worker, DEBUG off, static files collected with their
manifest and served by WhiteNoise. The reviewer pages and the admin come with their stylesheets."""
import os
import re
import subprocess
import sys
import urllib.request

import pytest
from django.contrib.auth import get_user_model

from .api.conftest import serving
from .builders import a_user
from .conftest import REPO_ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

STYLESHEET = re.compile(r'<link rel="stylesheet"[^>]*href="([^"]+)"')


@pytest.fixture(scope="module")
def static_root(tmp_path_factory):
    """`collectstatic` once for the module, as `make serve` and the image run it."""
    root = tmp_path_factory.mktemp("static")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "eam_site.settings", "DEBUG": "false",
           "EAM_STATIC_ROOT": str(root), "EAM_STATIC_MANIFEST": "true"}
    collected = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=REPO_ROOT, env=env,
                               capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stderr
    assert (root / "staticfiles.json").is_file()
    return root


@pytest.fixture
def server(process_env, static_root, tmp_path):
    """The base URL of gunicorn + uvicorn worker with DEBUG off on the test's database."""
    env = {**process_env, "DEBUG": "false", "EAM_STATIC_ROOT": str(static_root), "EAM_STATIC_MANIFEST": "true"}
    with serving("gunicorn-asgi", env, tmp_path) as base:
        yield base


def get(url: str, **headers):
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers, response.read()


@pytest.mark.parametrize("path", ["/ui/login", "/admin/login/"])
def test_pages_and_their_hashed_stylesheets_are_served(server, path, tmp_path):
    # when a login page is fetched
    status, _, body = get(server + path)

    # then it renders, and names stylesheets by their content hash
    assert status == 200
    stylesheets = STYLESHEET.findall(body.decode())
    assert stylesheets, body.decode()[:2000]
    assert all(re.search(r"\.[0-9a-f]{12}\.css$", href) for href in stylesheets), stylesheets

    for href in stylesheets:
        # and each stylesheet comes as CSS, cached for good (its URL changes with its content), compressed
        status, headers, css = get(server + href, **{"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Type"].startswith("text/css"), href
        assert "immutable" in headers["Cache-Control"]
        assert headers["Content-Encoding"] == "gzip" and css

    # and the ASGI server did not have to stream a static file chunk by chunk (Django warns when it must)
    assert "synchronous iterators" not in (tmp_path / "gunicorn-asgi.log").read_text()


def stylesheet_responses(page) -> list:
    seen = []
    page.on("response", lambda response: seen.append(response)
            if response.request.resource_type == "stylesheet" else None)
    return seen


def rules_per_stylesheet(page) -> list[int]:
    return page.evaluate("() => [...document.styleSheets].map(sheet => sheet.cssRules.length)")


def test_a_browser_gets_the_reviewer_pages_and_the_admin_with_their_css(chromium, server, settings):
    # given a reviewer and a superuser, their passwords hashed as the server checks them (not the suite's fast way)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    a_user("rita", "reviewers")
    get_user_model().objects.create_superuser(username="root", password="root-pass-123", email="root@example.org")
    context = chromium.new_context(base_url=server)
    context.set_default_timeout(15_000)
    page = context.new_page()
    stylesheets = stylesheet_responses(page)
    try:
        # when the reviewer signs in to /ui and opens the job list
        page.goto("/ui/login?next=/ui/jobs")
        page.get_by_label("Username").fill("rita")
        page.get_by_label("Password").fill("rita-pass-123")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/ui/jobs")

        # then every stylesheet loaded and applies rules
        assert page.get_by_text("Signed in as").is_visible()
        assert stylesheets and all(response.status == 200 for response in stylesheets), \
            [(r.url, r.status) for r in stylesheets]
        assert rules_per_stylesheet(page) and all(rules_per_stylesheet(page))

        # when the superuser signs in to the admin
        stylesheets.clear()
        page.goto("/admin/login/?next=/admin/")
        page.fill("#id_username", "root")
        page.fill("#id_password", "root-pass-123")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")

        # then the admin's stylesheets loaded too
        assert "/admin/css/" in " ".join(response.url for response in stylesheets)
        assert all(response.status == 200 for response in stylesheets), [(r.url, r.status) for r in stylesheets]
        assert rules_per_stylesheet(page) and all(rules_per_stylesheet(page))
    finally:
        context.close()
