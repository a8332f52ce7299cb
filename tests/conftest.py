"""Shared fixtures: people, a clean slate per test, and what real-process tests need to reach the test database;
the builders themselves are in tests/builders/."""
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from guards.triggers import GUARDED_TABLES, install, uninstall

from .builders import People, make_people

REPO_ROOT = Path(__file__).resolve().parent.parent

@contextmanager
def guards_lifted(conn):
    """Test-only: drop the guard triggers around a flush, then put them back exactly as migrations do."""
    tables = set(conn.introspection.table_names())
    present = [g for g in GUARDED_TABLES.values() if g.table in tables]
    for guarded in present:
        uninstall(conn, guarded)
    try:
        yield
    finally:
        for guarded in present:
            install(conn, guarded)


@pytest.fixture(scope="session", autouse=True)
def _flush_through_guards():
    """Transactional tests empty the tables between tests; the guards would (rightly) refuse that."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        with guards_lifted(self.connection):
            original(self, sql_list)

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    BaseDatabaseOperations.execute_sql_flush = original


@pytest.fixture
def artifact_root(tmp_path, settings) -> Path:
    """The test's own empty artifact root, for a test that changes files behind the storage's back (the
    session's root is shared, and runs and jobs are content-addressed: the same ids come back in other tests).
    The storage is resolved on each call, so the settings are enough."""
    root = tmp_path / "artifacts"
    root.mkdir()
    settings.EAM_ARTIFACT_ROOT = str(root)
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(root)}},
    }
    return root


@pytest.fixture
def policy_root(tmp_path, settings) -> Path:
    """The test's own copy of policies/, where it may add a bundle (a small budget, say)."""
    root = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", root)
    settings.EAM_POLICY_ROOT = str(root)
    return root


def database_url() -> str:
    """A DATABASE_URL for the test database this session created, for child processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


@pytest.fixture
def process_env(transactional_db, settings):
    """Environment for `manage.py` child processes that work on this test's (committed) database."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=database_url(),
        SECRET_KEY="eam-test-only-key",
        EAM_ARTIFACT_ROOT=str(settings.EAM_ARTIFACT_ROOT),
        # Loop workers would anchor the session's shared artifact root, which outlives each test's jobs.
        EAM_ANCHOR_SECONDS="0",
        DJANGO_SETTINGS_MODULE="eam_site.settings",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


@pytest.fixture
def python():
    return sys.executable


@pytest.fixture
def people(db) -> People:
    """One user per role, a superuser and a user without a role (admin/conftest.py makes them staff)."""
    return make_people()


# --- browser tests: headless Chromium (Debian's package) driven by Playwright -----------------------------
CHROMIUM = os.environ.get("EAM_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT_DIR = REPO_ROOT / "test-output" / "screenshots"


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session. Missing browser: skip, unless EAM_REQUIRE_BROWSER=1 (CI)."""
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is not installed (Debian package chromium)"
        if os.environ.get("EAM_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on the test thread; the test's own ORM calls are still
    # synchronous, so Django's async-safety check would refuse them without this.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server):
    """A fresh browser context (no cookies) on the live test server; `page.goto("/ui/jobs")` works."""
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    browser_page = context.new_page()
    yield browser_page
    context.close()


@pytest.fixture
def screenshot(page, request):
    """`screenshot("approved")` saves the whole page under test-output/screenshots/<test>-approved.png."""

    def save(name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        test_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)
        path = SCREENSHOT_DIR / f"{test_name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


# --- artifacts on a local S3 server (moto's server mode, in this process, on loopback) ---------------------
@pytest.fixture(scope="session")
def s3_server() -> str:
    """The endpoint URL of a local S3 server for the session; dummy AWS credentials are in the environment."""
    from .s3_support import local_s3_server

    with local_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_server, settings):
    """The test's own empty bucket, as `STORAGES["artifacts"]`; `s3_bucket.env(process_env)` points child
    processes at it."""
    from .s3_support import a_bucket

    bucket = a_bucket(s3_server)
    settings.EAM_ARTIFACT_STORAGE = "s3"
    settings.STORAGES = {**settings.STORAGES, "artifacts": bucket.storage_settings()}
    return bucket
