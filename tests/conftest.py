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
