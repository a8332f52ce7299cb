"""Settings of the API benchmark's server: the real settings, with bench/api_urls.py as the root urlconf."""
from eam_site.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench.api_urls"
