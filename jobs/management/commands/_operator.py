"""What the operator commands share: resolving the acting user and turning domain errors into exit codes."""
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from jobs.events import Actor
from jobs.errors import DomainError

EXIT_CODES = {400: 2, 403: 3, 404: 4, 409: 5}


def user_actor(username: str) -> Actor:
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"no active user {username!r}", returncode=4)
    return Actor.user(user)


@contextmanager
def domain_errors():
    """Exit with 2 (invalid), 3 (forbidden), 4 (not found) or 5 (conflict) and the error's code and detail."""
    try:
        yield
    except DomainError as exc:
        lines = [f"{exc.code}: {exc.detail}"] + [f"  {e['path'] or '/'}: {e['message']}" for e in exc.errors]
        raise CommandError("\n".join(lines), returncode=EXIT_CODES.get(exc.status, 1)) from exc
