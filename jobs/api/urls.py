"""Routes of the JSON API (DESIGN §8), without trailing slashes."""
from django.urls import path
from rest_framework.routers import SimpleRouter

from . import docs, research_views
from .views import JobViewSet

router = SimpleRouter(trailing_slash=False)
router.register("jobs", JobViewSet, basename="job")

urlpatterns = [
    *router.urls,
    path("runs/<str:run_id>", research_views.RunApi.as_view(), name="run-detail"),
    path("registry", research_views.RegistryApi.as_view(), name="registry-list"),
    path("snapshots", research_views.SnapshotListApi.as_view(), name="snapshot-list"),
    path("policies", research_views.PolicyListApi.as_view(), name="policy-list"),
    path("healthz", research_views.HealthApi.as_view(), name="healthz"),
    path("api/schema", docs.SchemaView.as_view(), name="api-schema"),
    path("api/docs", docs.DocsView.as_view(), name="api-docs"),
    path("api/docs/assets/<str:name>", docs.swagger_asset, name="api-docs-asset"),
]
