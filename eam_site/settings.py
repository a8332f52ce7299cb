"""Settings for EAM, read from the environment (see .env.example for every variable)."""
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise environ.ImproperlyConfigured("SECRET_KEY is required when DEBUG is off (see .env.example)")
    SECRET_KEY = "eam-insecure-debug-only-key"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "guards",
    "research",
    "jobs",
    "workflow",
    "ui",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))
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

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": EAM_ARTIFACT_ROOT},
    },
}

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
