"""The research kernel's domain errors: expected failures that the engine records, never retries blindly."""


class ResearchError(Exception):
    """Base of every expected failure of the research kernel."""

    code = "research_error"

    def __init__(self, message: str, *, errors: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])


class CompileError(ResearchError):
    """A blueprint (or a runspec) that cannot be compiled; `errors` holds `{path, message}` with JSON pointers."""

    code = "compile_error"

    def __init__(self, message: str = "", *, errors: list[dict] | None = None):
        errors = list(errors or [])
        if not message:
            message = "; ".join(f"{e['path'] or '/'}: {e['message']}" for e in errors) or "invalid blueprint"
        super().__init__(message, errors=errors)


class SnapshotError(ResearchError):
    """Market data that cannot be ingested or no longer matches its recorded sha256."""

    code = "snapshot_error"

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


class SnapshotNotFound(SnapshotError):
    code = "snapshot_not_found"


class ArtifactConflict(ResearchError):
    """Different bytes for an artifact path that already holds other bytes (artifacts are write-once)."""

    code = "artifact_conflict"


class ArtifactNotFound(ResearchError):
    code = "artifact_not_found"


class UnsafePath(ResearchError):
    """An artifact path that could leave the storage root."""

    code = "unsafe_path"


class PolicyError(ResearchError):
    """A policy bundle that is unknown, invalid or changed since it was referenced."""

    code = "policy_error"


class DossierError(ResearchError):
    """A dossier that is missing or does not match its own index."""

    code = "dossier_error"


class RunNotFound(ResearchError):
    """A run id with no dossier."""

    code = "run_not_found"


class InvalidRunId(RunNotFound):
    """A run id that fails its allowlist (12 lowercase hex characters): no run can have it."""

    code = "invalid_run_id"


class SegmentNotFound(ResearchError):
    code = "segment_not_found"


class HoldoutHidden(ResearchError):
    """A holdout segment's curve or trades: a holdout shows its metrics only."""

    code = "holdout_hidden"


class IntegrityFailure(ResearchError):
    """An artifact that is not the one recorded (and approved): its bytes changed after the event that
    recorded their sha256. The job stops in ERROR with `error_class` integrity; nothing runs on it."""

    code = "integrity"
    error_class = "integrity"
