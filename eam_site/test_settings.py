"""Settings for the test suite: the normal settings with a throwaway key and artifact root."""
import os
import tempfile

os.environ.setdefault("SECRET_KEY", "eam-test-only-key")
if "EAM_ARTIFACT_ROOT" not in os.environ:
    os.environ["EAM_ARTIFACT_ROOT"] = tempfile.mkdtemp(prefix="eam-test-artifacts-")

from .settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
