"""Root URL configuration: the admin, the /ui reviewer pages and the JSON API (jobs.api)."""
from django.contrib import admin
from django.urls import include, path

from notifications.views import notification_settings

urlpatterns = [
    path("admin/", admin.site.urls),
    # Among the /ui pages, from the notifications app (which sits above jobs, beside ui).
    path("ui/settings/notifications", notification_settings, name="notification-settings"),
    path("ui/", include("ui.urls")),
    path("", include("jobs.api.urls")),
]

# A URL no view matches answers in the API's JSON error shape (HTML under /admin/ and /ui/).
handler400 = "jobs.api.exceptions.bad_request"
handler404 = "jobs.api.exceptions.not_found"
handler500 = "jobs.api.exceptions.server_error"
