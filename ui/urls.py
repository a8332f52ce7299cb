"""The /ui reviewer pages."""
from django.urls import path
from django.views.generic import RedirectView

from . import decisions, registry_pages, views

app_name = "ui"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="ui:jobs"), name="home"),
    path("login", views.LoginView.as_view(), name="login"),
    path("logout", views.LogoutView.as_view(), name="logout"),
    path("jobs", views.job_list, name="jobs"),
    path("jobs/waiting-for-me", views.waiting_list, name="waiting"),
    path("jobs/<str:job_id>", views.job_detail, name="job"),
    path("jobs/<str:job_id>/approve", decisions.Approve.as_view(), name="approve"),
    path("jobs/<str:job_id>/reject", decisions.Reject.as_view(), name="reject"),
    path("jobs/<str:job_id>/override", decisions.Override.as_view(), name="override"),
    path("jobs/<str:job_id>/rerun", decisions.Rerun.as_view(), name="rerun"),
    path("runs/compare", views.run_compare, name="run-compare"),
    path("runs/<str:run_id>", views.run_detail, name="run"),
    path("registry", registry_pages.registry_list, name="registry"),
    path("snapshots", registry_pages.snapshot_list, name="snapshots"),
]
