"""`manage.py check --deploy` with the production environment documented in docs/operations.md passes without a
warning; with the development defaults it names what production must set."""
import os
import re
import secrets
import subprocess
import sys

import pytest

from .conftest import REPO_ROOT, database_url
from .jobs.test_signatures import write_key

pytestmark = pytest.mark.django_db

OPERATIONS = REPO_ROOT / "docs" / "operations.md"
HEADING = "### The production environment"
# Secrets and paths of the documented environment, replaced here by the test's own; every other value is used as
# written.
REPLACED = {"SECRET_KEY", "DATABASE_URL", "EAM_SIGNING_KEYS", "EAM_ARTIFACT_ROOT", "EAM_STATIC_ROOT"}
DEVELOPMENT_WARNINGS = {"security.W004", "security.W008", "security.W012", "security.W016", "jobs.W001"}


def documented_environment() -> dict[str, str]:
    """The NAME=value lines of the first code block under the heading in docs/operations.md."""
    text = OPERATIONS.read_text(encoding="utf-8")
    assert HEADING in text, f"{OPERATIONS} has no {HEADING!r}"
    block = re.search(r"^```[^\n]*\n(.*?)^```", text.split(HEADING, 1)[1], re.S | re.M).group(1)
    return dict(line.split("=", 1) for line in block.splitlines() if line.strip() and not line.startswith("#"))


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {name: value for name, value in os.environ.items()
            if name != "DJANGO_SETTINGS_MODULE" and not name.startswith(("SECURE_", "CSRF_", "SESSION_"))}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=REPO_ROOT, env={**base, "DJANGO_SETTINGS_MODULE": "eam_site.settings", **env},
                          capture_output=True, text=True, timeout=120)


def test_the_documented_production_environment_passes_check_deploy(tmp_path):
    # given the documented environment, with a real key file, a strong secret and the test's database
    env = documented_environment()
    assert REPLACED <= env.keys() and env["DEBUG"] == "false"
    key_id = env["EAM_SIGNING_KEYS"].split("=", 1)[0]
    private, _ = write_key(tmp_path, key_id)
    env.update(SECRET_KEY=secrets.token_urlsafe(50), DATABASE_URL=database_url(),
               EAM_SIGNING_KEYS=f"{key_id}={private}", EAM_ARTIFACT_ROOT=str(tmp_path / "artifacts"),
               EAM_STATIC_ROOT=str(tmp_path / "static"))

    # when the deployment checks run, then none fails and none warns
    checked = check_deploy(env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


def test_the_development_defaults_name_what_production_must_set(tmp_path):
    # given the defaults: plain http, no HSTS, cookies not marked secure, the development signing key
    env = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "DATABASE_URL": database_url(),
           "EAM_SIGNING_KEYS": "", "EAM_KEY_DIR": str(tmp_path / "keys")}

    # when the deployment checks run
    checked = check_deploy(env)

    # then they fail on warnings, each naming a setting the production environment sets
    assert checked.returncode == 1
    found = set(re.findall(r"\(([a-z]+\.W\d{3})\)", checked.stderr + checked.stdout))
    assert found == DEVELOPMENT_WARNINGS, checked.stderr
