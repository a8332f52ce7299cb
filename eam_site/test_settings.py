"""Settings for the test suite: the normal settings with a throwaway key and artifact root."""
import os
import tempfile

os.environ.setdefault("SECRET_KEY", "eam-test-only-key")
if "EAM_ARTIFACT_ROOT" not in os.environ:
    os.environ["EAM_ARTIFACT_ROOT"] = tempfile.mkdtemp(prefix="eam-test-artifacts-")
# Never a real bucket from a developer's .env: the tests of S3 use their own local server (tests/s3_support.py).
os.environ["EAM_ARTIFACT_STORAGE"] = "filesystem"
# Pages render with plain static names, so nothing needs collecting first; the server processes tests start
# inherit this (tests/test_serving.py turns the manifest on for its own server).
os.environ.setdefault("EAM_STATIC_MANIFEST", "false")

from .settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# WhiteNoise looks each static URL up when asked instead of scanning STATIC_ROOT, which nothing collected into.
WHITENOISE_AUTOREFRESH = True
