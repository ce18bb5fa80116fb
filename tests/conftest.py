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
        _start_local_ray()
    yield
    ray.shutdown()


def _start_local_ray() -> None:
    """``ray_local``'s Ray: 2 CPUs, no dashboard, quiet (also what ``ray_cluster`` restores)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)


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


# A multi-node cluster for the node-loss tests (issue 15); the logical resources are small on purpose.
CLUSTER_WORKER_NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}
# a killed node (connection refused) is declared dead after 3 failed health checks 1 s apart, sooner
# than with Ray's defaults; the per-check timeout keeps its default, so a slow but live node survives
_CLUSTER_SYSTEM_CONFIG = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
                          "health_check_failure_threshold": 3, "task_retry_delay_ms": 100}


@pytest.fixture(scope="module")
def ray_cluster(s3_server: str) -> Iterator[object]:
    """A real 3-node Ray cluster on this machine (``ray.cluster_utils.Cluster``); yields the Cluster.

    A head without CPUs (GCS, the driver's raylet and object store) and two worker nodes with one
    logical CPU and an 80 MiB object store each, every node its own raylet and object store.
    ``RAY_ADDRESS`` names the head and the driver joins it (``ray.init(address=...)``), as a
    user's job on a cluster would; affectlab commands run in the test reuse that connection.
    Tests add and remove nodes with ``cluster.add_node(**cluster.worker_node_args)`` and
    ``cluster.remove_node(node, allow_graceful=False)`` (call those from the main thread: a Ray
    node registers signal handlers). The nodes inherit this process's environment, started after
    ``s3_server``: the workers reach the local S3 server like the nodes of a real cluster.

    Module-scoped and exclusive with ``ray_local`` (one Ray per driver process): a local Ray that
    ``ray_local`` started earlier in the session is shut down first and started again, with the
    same settings, when the module is done. Do not use both fixtures in one module.
    """
    import ray
    from ray.cluster_utils import Cluster

    restart_local = ray.is_initialized()
    if restart_local:
        ray.shutdown()
    saved = os.environ.get("RAY_ADDRESS")
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "object_store_memory": 80 * 1024 * 1024, "include_dashboard": False,
            "_system_config": _CLUSTER_SYSTEM_CONFIG})
        for _ in range(2):
            cluster.add_node(**CLUSTER_WORKER_NODE)
        cluster.wait_for_nodes()
        os.environ["RAY_ADDRESS"] = cluster.address
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        cluster.worker_node_args = dict(CLUSTER_WORKER_NODE)  # what a replacement node gets
        yield cluster
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        if saved is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = saved
        if restart_local:  # as ray_local started it
            _start_local_ray()
