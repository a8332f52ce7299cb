"""/ui/settings/notifications: a signed-in person chooses which kinds of notification they receive by e-mail.

A valid POST saves and redirects back with a message (post/redirect/get); an invalid one renders the page again
with 400 and writes nothing.
"""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from ui.views import with_navigation

from .forms import NotificationSettingsForm
from .services import save_settings
from .selectors import receiving


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request):
    with_navigation(request)
    status = 200
    if request.method == "POST":
        form = NotificationSettingsForm(request.POST)
        if form.is_valid():
            save_settings(user=request.user, email_kinds=form.cleaned_data["email"])
            messages.success(request, "Your notification settings are saved.")
            return redirect("notification-settings")
        status = 400
    else:
        form = NotificationSettingsForm(initial={"email": receiving(request.user)})
    return render(request, "notifications/settings.html", {
        "form": form, "has_email": bool(request.user.email), "email": request.user.email,
    }, status=status)
