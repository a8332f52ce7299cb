"""Root URL configuration: the admin, the JSON API (jobs.api) and, later, the /ui pages."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # /ui pages: path("ui/", include("ui.urls")) goes here.
    path("", include("jobs.api.urls")),
]

# A URL no view matches answers in the API's JSON error shape (HTML under /admin/ and /ui/).
handler400 = "jobs.api.exceptions.bad_request"
handler404 = "jobs.api.exceptions.not_found"
handler500 = "jobs.api.exceptions.server_error"
