"""Settings for the test suite: the normal settings with a throwaway key and artifact root."""
import os
import tempfile

os.environ.setdefault("SECRET_KEY", "eam-test-only-key")
os.environ.setdefault("EAM_ARTIFACT_ROOT", tempfile.mkdtemp(prefix="eam-test-artifacts-"))

from .settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
