"""Routes of the JSON API (DESIGN §8), without trailing slashes."""
from django.urls import path
from rest_framework.routers import SimpleRouter

from . import audit_views, bundle_views, docs, metrics, research_views, streams
from .views import JobViewSet

router = SimpleRouter(trailing_slash=False)
router.register("jobs", JobViewSet, basename="job")

urlpatterns = [
    # Server-sent events: async views, plain Django (streams.py opens them as the API's reads).
    path("jobs/<str:job_id>/stream", streams.job_stream, name="job-stream"),
    path("events/stream", streams.all_events_stream, name="events-stream"),
    path("jobs/<str:job_id>/bundle", bundle_views.BundleApi.as_view(), name="job-bundle"),
    *router.urls,
    path("runs/<str:run_id>", research_views.RunApi.as_view(), name="run-detail"),
    path("registry", research_views.RegistryApi.as_view(), name="registry-list"),
    path("snapshots", research_views.SnapshotListApi.as_view(), name="snapshot-list"),
    path("policies", research_views.PolicyListApi.as_view(), name="policy-list"),
    path("audit/reads", audit_views.ReadLogApi.as_view(), name="audit-reads"),
    path("healthz", research_views.HealthApi.as_view(), name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("api/schema", docs.SchemaView.as_view(), name="api-schema"),
    path("api/docs", docs.DocsView.as_view(), name="api-docs"),
    path("api/docs/assets/<str:name>", docs.swagger_asset, name="api-docs-asset"),
]
