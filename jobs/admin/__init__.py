"""The Django admin of EAM: reviewers read jobs and decide checkpoints here; nothing is added, changed or
deleted through it (the services write events, the database refuses UPDATE and DELETE)."""
from django.contrib import admin

from . import jobspec, reads, records  # noqa: F401  (registers the model admins)

# No delete anywhere, for anyone: the bulk delete would only meet the guard triggers' refusal.
if "delete_selected" in dict(admin.site.actions):
    admin.site.disable_action("delete_selected")

# "View site" leads to the reviewer pages, the site's front door for people.
admin.site.site_url = "/ui/jobs"
