"""Settings of the viewflow side of the benchmark: what a viewflow project needs, nothing more.

The database comes from BENCH_VIEWFLOW_DATABASE (a JSON Django DATABASES entry) so that the benchmark can
give it a fresh database each round, with Django's defaults (viewflow ships no database settings of its
own) or with the SQLite options EAM's settings use.
"""
import json
import os

SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "viewflow",
    "viewflow.workflow",
    "bench.viewflow_flow",
]
MIDDLEWARE = []

DATABASES = {"default": json.loads(os.environ["BENCH_VIEWFLOW_DATABASE"])}
