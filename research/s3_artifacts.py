"""Artifacts in an S3 bucket (django-storages' S3Storage): the object calls research.artifacts needs there.

S3 has no link() and no append, but it has conditional writes: `If-None-Match: *` creates a key only if no
object has it, `If-Match: <etag>` replaces an object only if it is still the one read. So of two writers racing
for a new key exactly one creates it, and an appended log is replaced only by a writer that saw its last bytes.
"""
import mimetypes
import time

from botocore.exceptions import ClientError
from storages.backends.s3 import S3Storage
from storages.utils import safe_join

# 412: the condition did not hold. 409: another conditional write of the key was in flight; AWS asks to retry.
PRECONDITION_FAILED = "412"
CONFLICTING_WRITE = "409"
ATTEMPTS = 5


def handles(storage) -> bool:
    return isinstance(storage, S3Storage)


def _key(storage, path: str) -> str:
    # `path` passed check_path (no `..`, nothing absolute); safe_join adds the prefix and refuses to leave it.
    return safe_join(storage.location, path)


def _client(storage):
    return storage.connection.meta.client


def _status(error: ClientError) -> str:
    return str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def read(storage, path: str) -> tuple[bytes, str] | None:
    """(bytes, etag) of the object at `path`, or None when there is none: one GET."""
    try:
        reply = _client(storage).get_object(Bucket=storage.bucket_name, Key=_key(storage, path))
    except ClientError as error:
        if _status(error) == "404":
            return None
        raise
    return reply["Body"].read(), reply["ETag"]


def _put(storage, path: str, data: bytes, **condition) -> bool:
    """PUT `data` at `path` under `condition`: True if written, False if the condition did not hold."""
    key = _key(storage, path)
    params = storage.get_object_parameters(key)
    params.setdefault("ContentType", mimetypes.guess_type(key)[0] or "application/octet-stream")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _client(storage).put_object(Bucket=storage.bucket_name, Key=key, Body=data, **params, **condition)
            return True
        except ClientError as error:
            if _status(error) == PRECONDITION_FAILED or (condition and _status(error) == "404"):
                return False  # 404: the object to match was deleted meanwhile
            if _status(error) != CONFLICTING_WRITE or attempt == ATTEMPTS:
                raise
        time.sleep(0.05 * attempt)


def create(storage, path: str, data: bytes) -> bytes | None:
    """Create the object at `path` holding `data`, only if none is there: None when created, else the bytes of
    the object that is there."""
    while not _put(storage, path, data, IfNoneMatch="*"):
        found = read(storage, path)
        if found is not None:
            return found[0]
    return None


def extend(storage, path: str, data: bytes, check) -> None:
    """Replace the object at `path` (or create it) with `data`, once `check(existing bytes)` accepted what is
    there; if another writer replaced it meanwhile, read again and check again."""
    while True:
        found = read(storage, path)
        existing, etag = found if found is not None else (b"", None)
        check(existing)
        if existing == data:
            return
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        if _put(storage, path, data, **condition):
            return


def replace(storage, path: str, data: bytes) -> None:
    """Replace the object at `path` in one PUT: a reader gets the old bytes or the new ones."""
    _put(storage, path, data)
