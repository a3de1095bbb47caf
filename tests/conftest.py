"""Shared fixtures: one real local Ray for the session, Prefect's real test harness."""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 2 CPUs (the CI machine's size), shared by every test."""
    import ray

    from compute.ray_adapter import ensure_ray

    if not ray.is_initialized():
        os.environ.pop("RAY_ADDRESS", None)
        ensure_ray(2)
    yield ray


@pytest.fixture(scope="session")
def prefect_harness():
    """Prefect's own test harness: a temporary server and database for the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models on a shared 2-core machine: inter-op spinning costs more than the maths."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- scale-out
# One S3-compatible server, one two-node Ray cluster and the Prefect server's URL, shared by
# the cluster, object-storage and deployment tests (tests/test_cluster*.py, ...).
@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """`moto_server` on 127.0.0.1 with dummy (but recognisable) credentials."""
    from tests.object_store import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """`ray start --head` + a second node joined with `ray start --address` (token auth on both;
    the second node with restricted CPU features), torn down by process id."""
    import shutil
    import tempfile

    from tests.local_cluster import RESTRICTED_CPU_ENV, LocalCluster

    # A short private temp dir: Ray's socket paths live under it, and its address file must not
    # be the default one other processes on the machine would join.
    base = tempfile.mkdtemp(prefix="ray-unimontage-test-", dir="/tmp")
    cluster = LocalCluster(base, env=s3_server.env(), worker_env=RESTRICTED_CPU_ENV)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness):
    """The test harness's Prefect server, for subprocess drivers (no ephemeral server each)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()
