"""The API's own documentation, served offline: Swagger UI from the drf-spectacular-sidecar package.

The page's scripts and styles come from the installed package through `swagger_asset`, which serves only
the files named in SWAGGER_ASSETS; nothing is loaded from a CDN.
"""
import mimetypes
from pathlib import Path

import drf_spectacular_sidecar
from django.http import FileResponse, Http404
from django.urls import reverse
from django.views.decorators.cache import cache_control
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

SWAGGER_DIST = Path(drf_spectacular_sidecar.__file__).resolve().parent / "static" / "drf_spectacular_sidecar" / "swagger-ui-dist"
SWAGGER_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"})


class SchemaView(SpectacularJSONAPIView):
    """OpenAPI 3.1 of the whole API, as JSON."""


class DocsView(SpectacularSwaggerView):
    url_name = "api-schema"

    @staticmethod
    def _swagger_ui_resource(filename):
        return reverse("api-docs-asset", kwargs={"name": filename})

    @staticmethod
    def _swagger_ui_favicon():
        return reverse("api-docs-asset", kwargs={"name": "favicon-32x32.png"})


@cache_control(max_age=86400, public=True)
def swagger_asset(request, name: str):
    if name not in SWAGGER_ASSETS:
        raise Http404(name)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse((SWAGGER_DIST / name).open("rb"), content_type=content_type)
