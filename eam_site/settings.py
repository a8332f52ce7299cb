"""Settings for EAM, read from the environment (see .env.example for every variable)."""
import os
from pathlib import Path

import environ

from eam_site import logs

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# Read as given: django-environ would take a value that starts with "$" for the name of another variable.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise environ.ImproperlyConfigured("SECRET_KEY is required when DEBUG is off (see .env.example)")
    SECRET_KEY = "eam-insecure-debug-only-key"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

# HTTPS and cookies (docs/settings.md, "Serving"). The defaults keep plain http on a laptop working; the
# production environment in docs/operations.md turns them on, and `check --deploy` passes with it.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = env.bool("SECURE_CONTENT_TYPE_NOSNIFF", default=True)
SECURE_REFERRER_POLICY = env.str("SECURE_REFERRER_POLICY", default="same-origin")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Behind a TLS-terminating proxy: the header it sets and the value that means https, e.g.
# HTTP_X_FORWARDED_PROTO,https. Set it only when the proxy always sets (or strips) that header.
_proxy_ssl_header = env.tuple("EAM_PROXY_SSL_HEADER", default=())
if _proxy_ssl_header and len(_proxy_ssl_header) != 2:
    raise environ.ImproperlyConfigured("EAM_PROXY_SSL_HEADER is HEADER,VALUE, e.g. HTTP_X_FORWARDED_PROTO,https")
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header or None
# Probes and scrapers inside the network call plain http; a redirect would fail them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles: `runserver` then leaves static files to WhiteNoise, as in production.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "guards",
    "research",
    "jobs",
    "workflow",
    "notifications",
    "ui",
]

MIDDLEWARE = [
    # First: every answer, errors and static files included, carries X-Request-ID and is logged in one line.
    "eam_site.request_ids.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise: static files from STATIC_ROOT (compressed, cached forever when hashed), before sessions and auth.
    "eam_site.staticfiles.StaticFilesMiddleware",
    # Before anything reads the body: refuse one larger than EAM_MAX_BODY_BYTES with 413.
    "jobs.api.http.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "jobs.api.http.DatabaseUnavailableMiddleware",  # 503, not 500, while the database is unreachable
]

ROOT_URLCONF = "eam_site.urls"
WSGI_APPLICATION = "eam_site.wsgi.application"
ASGI_APPLICATION = "eam_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'eam.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE: every transaction takes the write lock up front, so concurrent writers queue on the
    # busy timeout instead of failing a lock upgrade. WAL lets readers run beside the writer.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 60,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
    )
    # A file (not memory) so that tests can start real worker processes on the same database.
    _db.setdefault("TEST", {})["NAME"] = env.str(
        "EAM_TEST_SQLITE_NAME", default=str(VAR_DIR / "test-eam.sqlite3")
    )
    VAR_DIR.mkdir(exist_ok=True)
_db.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Where a page that needs a signed-in user sends a visitor (the admin keeps its own login page).
LOGIN_URL = "ui:login"

STATIC_URL = "static/"
STATIC_ROOT = env.str("EAM_STATIC_ROOT", default=str(VAR_DIR / "static"))
# Hashed, compressed copies and a manifest (made by collectstatic): URLs change with content, so WhiteNoise can
# let browsers cache them forever. Off: plain names, nothing to collect first (DEBUG, and the test suite).
EAM_STATIC_MANIFEST = env.bool("EAM_STATIC_MANIFEST", default=not DEBUG)
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []

EAM_ARTIFACT_ROOT = env.str("EAM_ARTIFACT_ROOT", default=str(VAR_DIR / "artifacts"))
EAM_JOB_ROOT = env.str("EAM_JOB_ROOT", default=str(Path(EAM_ARTIFACT_ROOT) / "jobs"))
EAM_POLICY_ROOT = env.str("EAM_POLICY_ROOT", default=str(BASE_DIR / "policies"))
EAM_DEFAULT_SNAPSHOT_ID = env.str("EAM_DEFAULT_SNAPSHOT_ID", default="")
EAM_DEFAULT_POLICY_BUNDLE_ID = env.str("EAM_DEFAULT_POLICY_BUNDLE_ID", default="default_v2")
EAM_FOUR_EYES = env.bool("EAM_FOUR_EYES", default=True)
EAM_PUBLIC_READ = env.bool("EAM_PUBLIC_READ", default=False)
EAM_LEASE_SECONDS = env.int("EAM_LEASE_SECONDS", default=300)
EAM_MAX_ATTEMPTS = env.int("EAM_MAX_ATTEMPTS", default=3)
# First retry after this many seconds, doubling with each attempt.
EAM_RETRY_BACKOFF_SECONDS = env.float("EAM_RETRY_BACKOFF_SECONDS", default=5.0)
# Step name -> dotted path of the executor to use instead of the built-in one (workflow.executors).
EAM_STEP_EXECUTORS = env.dict("EAM_STEP_EXECUTORS", default={})
EAM_MAX_BODY_BYTES = env.int("EAM_MAX_BODY_BYTES", default=1024 * 1024)
# A step running longer than this (seconds) is failed as `timeout` and its lease released; EAM_STEP_TIMEOUTS
# sets a step's own limit (e.g. run=7200,gates=120).
EAM_STEP_TIMEOUT_SECONDS = env.float("EAM_STEP_TIMEOUT_SECONDS", default=3600.0)
EAM_STEP_TIMEOUTS = env.dict("EAM_STEP_TIMEOUTS", default={})
# Agent id -> provider configuration (JSON, docs/agents.md#providers); an agent not named runs its own rules.
# A model's key is never written here: an entry names the variable or file that holds it.
EAM_AGENT_PROVIDERS = env.json("EAM_AGENT_PROVIDERS", default={})
# Event and anchor signatures (docs/operations.md, section 6): key id -> PEM file. The last signing key listed
# signs; the others, and the public keys, verify. Without a signing key, one is generated into EAM_KEY_DIR.
EAM_SIGNING_KEYS = env.dict("EAM_SIGNING_KEYS", default={})
EAM_PUBLIC_KEYS = env.dict("EAM_PUBLIC_KEYS", default={})
EAM_KEY_DIR = env.str("EAM_KEY_DIR", default=str(VAR_DIR / "keys"))
# Loop workers write an anchor of every job's head at most this often (0: only `manage.py anchor_heads`).
EAM_ANCHOR_SECONDS = env.float("EAM_ANCHOR_SECONDS", default=600.0)
# Loop workers release expired leases with an event this often (0: only `manage.py reconcile`); the reconciler
# reports a job whose step has been due longer than EAM_RECONCILE_STALE_SECONDS without a claim.
EAM_RECONCILE_SECONDS = env.float("EAM_RECONCILE_SECONDS", default=300.0)
EAM_RECONCILE_STALE_SECONDS = env.float("EAM_RECONCILE_STALE_SECONDS", default=3600.0)
# GET /metrics: a bearer token the scraper must present, and/or the addresses (IPs, CIDRs) it may call from;
# with neither, only loopback callers (docs/operations.md, Metrics).
EAM_METRICS_TOKEN = env.str("EAM_METRICS_TOKEN", default="")
EAM_METRICS_ALLOW = env.list("EAM_METRICS_ALLOW", default=[])
# Event streams (docs/api.md, Event streams): a comment line this often keeps proxies from closing them; on
# SQLite they poll this often, on PostgreSQL a notice wakes them and they re-read this often anyway.
EAM_STREAM_HEARTBEAT_SECONDS = env.float("EAM_STREAM_HEARTBEAT_SECONDS", default=15.0)
EAM_STREAM_POLL_SECONDS = env.float("EAM_STREAM_POLL_SECONDS", default=0.5)
EAM_STREAM_SAFETY_POLL_SECONDS = env.float("EAM_STREAM_SAFETY_POLL_SECONDS", default=15.0)
EAM_STREAM_MAX_CONNECTIONS = env.int("EAM_STREAM_MAX_CONNECTIONS", default=100)  # open streams per process
# Notifications (docs/notifications.md): e-mail through Django's backend (the console by default), and webhooks,
# a JSON list of {name, url, secret_env, kinds?}; a webhook's secret is read from the variable it names.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="eam@localhost")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
EAM_SITE_URL = env.str("EAM_SITE_URL", default="http://localhost:8000")
EAM_WEBHOOKS = env.json("EAM_WEBHOOKS", default=[])
EAM_NOTIFY_MAX_ATTEMPTS = env.int("EAM_NOTIFY_MAX_ATTEMPTS", default=5)
EAM_NOTIFY_RETRY_SECONDS = env.float("EAM_NOTIFY_RETRY_SECONDS", default=30.0)

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if EAM_STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": EAM_ARTIFACT_ROOT},
    },
}
# Artifacts in the local folder EAM_ARTIFACT_ROOT, or in an S3 bucket (docs/operations.md, "Artifacts on S3").
# The bucket's credentials come from the standard AWS variables or the machine's role, never from a settings file.
EAM_ARTIFACT_STORAGE = env.str("EAM_ARTIFACT_STORAGE", default="filesystem")
if EAM_ARTIFACT_STORAGE == "s3":
    STORAGES["artifacts"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("EAM_S3_BUCKET"),
            "endpoint_url": env.str("EAM_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("EAM_S3_REGION", default="") or None,
            "location": env.str("EAM_S3_PREFIX", default=""),
            # Writes go through research.s3_artifacts (conditional PUTs); a save() must never rename either.
            "file_overwrite": False,
        },
    }
elif EAM_ARTIFACT_STORAGE != "filesystem":
    raise environ.ImproperlyConfigured(f"EAM_ARTIFACT_STORAGE is {EAM_ARTIFACT_STORAGE!r}: filesystem or s3")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Basic first: its WWW-Authenticate challenge makes DRF answer anonymous callers 401, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["jobs.api.http.JobPermission"],
    "DEFAULT_PARSER_CLASSES": ["jobs.api.http.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "jobs.api.http.JsonFirstNegotiation",
    "EXCEPTION_HANDLER": "jobs.api.exceptions.exception_handler",
    "URL_FORMAT_OVERRIDE": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "STRICT_JSON": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "EAM API",
    "DESCRIPTION": (
        "Deterministic, auditable research jobs with human review checkpoints. Errors are "
        '`{"detail", "code"}` (+ `errors` with JSON pointers); see docs/api.md.'
    ),
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page are public, and self-contained (no CDN): see jobs/api/docs.py.
    "SERVE_PUBLIC": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobs.api.schema.close_request_objects",
    ],
    "ENUM_NAME_OVERRIDES": {
        "JobStatus": "jobs.api.serializers.STATUS_CHOICES",
        "JobKind": "jobs.api.serializers.KIND_CHOICES",
        "ActorKind": "jobs.api.serializers.ACTOR_KINDS",
        "HealthStatus": "jobs.api.serializers.HEALTH_STATUSES",
    },
}

# Every log line through structlog (eam_site/logs.py): JSON lines in production, plain text by default.
LOGGING = logs.logging_config(log_format=env.str("EAM_LOG_FORMAT", default="console"),
                              level=env.str("LOG_LEVEL", default="WARNING"))
logs.configure()
