"""Settings of the API benchmark's server: the real settings, with bench/api_urls.py as the root urlconf and
one middleware more, outermost, that answers how many queries each request sent (`X-Queries`)."""
from eam_site.settings import *  # noqa: F401,F403
from eam_site.settings import MIDDLEWARE

ROOT_URLCONF = "bench.api_urls"
MIDDLEWARE = ["bench.api_urls.count_queries", *MIDDLEWARE]
