"""A local S3 server for the tests: moto's server mode in a thread of the test process, on loopback, with dummy
credentials; a bucket per test, which `STORAGES["artifacts"]` and child processes (`manage.py`) then use."""
import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import boto3

REGION = "us-east-1"
PREFIX = "eam"  # every key under a prefix, as EAM_S3_PREFIX sets it, so that the prefix is exercised too
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "eam-test-key", "AWS_SECRET_ACCESS_KEY": "eam-test-secret"}


@contextmanager
def local_s3_server():
    """A moto S3 server on 127.0.0.1 (a free port) while the block runs: its endpoint URL. The dummy credentials
    are in the environment meanwhile, so that no real ones are ever picked up."""
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in (*CREDENTIALS, "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN")}
    os.environ.update(CREDENTIALS, AWS_DEFAULT_REGION=REGION)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class Bucket:
    """One bucket on the local server: how EAM is pointed at it, and a client to look behind the storage's back."""

    name: str
    endpoint: str

    @cached_property
    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def storage_settings(self) -> dict:
        """`STORAGES["artifacts"]` as eam_site/settings.py makes it from `env()`."""
        return {"BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {"bucket_name": self.name, "endpoint_url": self.endpoint, "region_name": REGION,
                            "location": PREFIX, "file_overwrite": False}}

    def env(self, base: dict) -> dict:
        """`base` (a child process's environment) with EAM's artifacts in this bucket."""
        return {**base, **CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "EAM_ARTIFACT_STORAGE": "s3",
                "EAM_S3_BUCKET": self.name, "EAM_S3_ENDPOINT_URL": self.endpoint, "EAM_S3_REGION": REGION,
                "EAM_S3_PREFIX": PREFIX, "NO_PROXY": "127.0.0.1,localhost"}

    def keys(self, under: str = "") -> list[str]:
        """Every object's path below the prefix (and `under`), sorted."""
        paginator = self.client.get_paginator("list_objects_v2")
        start = f"{PREFIX}/"
        found = []
        for page in paginator.paginate(Bucket=self.name, Prefix=start + under):
            found.extend(entry["Key"][len(start):] for entry in page.get("Contents", ()))
        return sorted(found)

    def get(self, path: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=f"{PREFIX}/{path}")["Body"].read()

    def put(self, path: str, data: bytes) -> None:
        """Write `data` at `path` behind the storage's back (what someone with the bucket's keys could do)."""
        self.client.put_object(Bucket=self.name, Key=f"{PREFIX}/{path}", Body=data)


def a_bucket(endpoint: str) -> Bucket:
    """A new, empty bucket on the server at `endpoint`."""
    bucket = Bucket(name=f"eam-test-{uuid.uuid4().hex[:16]}", endpoint=endpoint)
    bucket.client.create_bucket(Bucket=bucket.name)
    return bucket
