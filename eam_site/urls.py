"""Root URL configuration: the admin, the /ui reviewer pages and the JSON API (jobs.api)."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ui/", include("ui.urls")),
    path("", include("jobs.api.urls")),
]

# A URL no view matches answers in the API's JSON error shape (HTML under /admin/ and /ui/).
handler400 = "jobs.api.exceptions.bad_request"
handler404 = "jobs.api.exceptions.not_found"
handler500 = "jobs.api.exceptions.server_error"
