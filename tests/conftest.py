"""Shared fixtures: a real local Ray with an explicit CPU budget and a real S3 HTTP server."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_local(s3_server: str) -> Iterator[None]:
    """A real local Ray cluster (2 CPUs), started once per test session.

    It depends on ``s3_server`` because Ray workers inherit the driver's environment at
    ``ray.init``: the AWS_* variables must be set before Ray starts for workers to reach S3.
    """
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto) on 127.0.0.1; sets the AWS_* environment.

    Yields the endpoint URL. Dummy credentials only: nothing leaves this machine.
    """
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A fresh bucket on the local S3 server; yields ``s3://<bucket>``."""
    import pyarrow.fs as pafs

    from affectlab import storage

    name = f"test-{uuid.uuid4().hex[:10]}"
    fs, _ = storage.filesystem(f"s3://{name}")
    fs.create_dir(name)
    assert isinstance(fs, pafs.S3FileSystem)
    return f"s3://{name}"
