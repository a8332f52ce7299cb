"""Domain errors raised by the services; every interface maps them (HTTP status, admin message, exit code)."""
from django.db import InterfaceError, OperationalError

from research import errors as research

# What a lost or refused database connection raises (Django wraps the driver's own errors in these): the API
# answers 503 for it and a worker waits it out, instead of either calling it a failure.
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)


class DomainError(Exception):
    """Base of the errors a person or client can cause; `code` is stable, `detail` is for a person."""

    status = 400
    code = "error"

    def __init__(self, detail: str, *, code: str | None = None, errors: list[dict] | None = None):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.errors = errors or []


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The request does not fit the job's current state (or lost a race for it)."""

    status = 409
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class InvalidInput(DomainError):
    """Input that breaks a contract; `errors` lists `{path, message}` with JSON pointers."""

    status = 400
    code = "invalid_input"


class BudgetExhausted(DomainError):
    status = 409
    code = "budget_exhausted"


class NotImplementedYet(DomainError):
    """A request for something EAM names but does not do yet; nothing is written."""

    status = 501
    code = "not_implemented"


# Research errors a read can meet, as the domain error each stands for (same code, message and errors); any
# other research error is the server's fault. The API's exception handler and the /ui pages both map by it.
RESEARCH_ERRORS: tuple[tuple[type[research.ResearchError], type[DomainError]], ...] = (
    (research.ArtifactNotFound, NotFound),
    (research.SnapshotNotFound, NotFound),
    (research.RunNotFound, NotFound),
    (research.SegmentNotFound, NotFound),
    (research.HoldoutHidden, NotFound),
    (research.UnsafePath, InvalidInput),
    (research.PolicyError, InvalidInput),
    (research.CompileError, InvalidInput),
)


def from_research(exc: research.ResearchError) -> DomainError | None:
    """The domain error `exc` stands for when a read meets it; None when it is the server's fault."""
    kind = next((kind for cls, kind in RESEARCH_ERRORS if isinstance(exc, cls)), None)
    return None if kind is None else kind(exc.message, code=exc.code, errors=exc.errors)
