"""Who may call what: reads need a signed-in user (or EAM_PUBLIC_READ), writes a model permission.

A view names the permission each of its actions requires in `required_permissions` (action -> perm);
actions not named there are reads. Anonymous callers get 401 (DRF does that when the first authenticator
offers a WWW-Authenticate challenge), signed-in callers without the permission 403 `permission_denied`.
"""
from django.conf import settings
from rest_framework.permissions import BasePermission


def _action(view) -> str:
    return getattr(view, "action", None) or view.request.method.lower()


class JobPermission(BasePermission):
    message = "you do not have permission to do this"
    code = "permission_denied"

    def has_permission(self, request, view):
        required = getattr(view, "required_permissions", {}).get(_action(view))
        user = request.user
        if required is None:
            return settings.EAM_PUBLIC_READ or bool(user and user.is_authenticated)
        if not (user and user.is_authenticated):
            return False
        if user.has_perm(required):
            return True
        self.message = f"you need the permission {required} (see the groups submitters, reviewers, operators)"
        return False
