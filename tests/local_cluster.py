"""A real two-node Ray cluster on this machine, as a user would start one by hand.

    cluster = LocalCluster(tmp_dir).start()   # `ray start --head` + `ray start --address ...`
    env = cluster.env()                        # RAY_ADDRESS + token auth for a driver process
    cluster.stop()                             # both nodes, by process id

Each node is one `ray start ... --block` process in its own session: stopping it (SIGTERM to
its pid) stops the Ray processes it started, and whatever survives is killed by the process
group the node leads. Nothing uses `ray stop`, which would stop every Ray on the machine.

Isolation from other Rays on the machine: a private temp dir (never the default
/tmp/ray, whose address file makes other processes' `ray.init()` join), free ports, and a
token of its own (`RAY_AUTH_MODE=token`, `RAY_AUTH_TOKEN_PATH`), so no other cluster's
driver can join it and it joins no other. The second node can run with restricted CPU
features (`RESTRICTED_CPU_ENV`): its workers are another kind of machine.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any


VENV_BIN = str(Path(sys.executable).parent)


def _npy_dispatched() -> str:
    """Every SIMD target NumPy dispatches to at run time (their names differ by NumPy version)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    return " ".join(__cpu_dispatch__)


# A node that looks like an old x86 CPU to the libraries that pick kernels at run time.
# OpenCV 5 spells three features differently from OpenCV 4 (SSE4.1, SSE4.2, AVX512-SKX);
# both spellings are listed, an unknown name is only a warning.
RESTRICTED_CPU_ENV = {
    "OPENCV_CPU_DISABLE": "AVX512_SKX,AVX512-SKX,AVX2,FMA3,AVX,SSE4_2,SSE4.2,SSE4_1,SSE4.1,POPCNT,SSSE3",
    "NPY_DISABLE_CPU_FEATURES": _npy_dispatched(),
    "ATEN_CPU_CAPABILITY": "default",
}


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClusterError(RuntimeError):
    pass


class LocalCluster:
    def __init__(self, base: str | Path, *, head_cpus: int = 1, worker_cpus: int = 1,
                 env: dict[str, str] | None = None, worker_env: dict[str, str] | None = None, object_store_bytes: int = 300 * 2**20,
                 start_timeout_s: float = 180.0):
        self.base = Path(base)
        self.temp_dir = self.base / "ray"  # also $RAY_TMPDIR/ray: see `bootstrap_env`
        self.token_path = self.base / "auth_token"
        self.head_cpus, self.worker_cpus = head_cpus, worker_cpus
        self.extra_env = dict(env or {})  # every node and driver (object-store credentials, ...)
        self.worker_env = dict(worker_env or {})  # the second node only
        self.object_store_bytes = object_store_bytes
        self.start_timeout_s = start_timeout_s
        self.procs: dict[str, subprocess.Popen] = {}
        self.gcs_port = self.dashboard_port = self.client_port = 0
        self.address = ""  # host:port of the GCS, as `ray start` advertises it

    # ------------------------------------------------------------------ environment
    def auth_env(self) -> dict[str, str]:
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)}

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for k in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_TMPDIR", *RESTRICTED_CPU_ENV):
            env.pop(k, None)
        env.update(self.auth_env(), RAY_USAGE_STATS_ENABLED="0", PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
                   # patience for a machine shared with other work: node start-up waits
                   RAY_raylet_start_wait_time_s="120", RAY_agent_register_timeout_ms="120000")
        env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
        return env | self.extra_env

    def env(self, **extra: str) -> dict[str, str]:
        """A driver's environment: joins this cluster through RAY_ADDRESS, with its token."""
        return self._base_env() | {"RAY_ADDRESS": self.address} | extra

    def bootstrap_env(self, **extra: str) -> dict[str, str]:
        """A driver's environment WITHOUT RAY_ADDRESS whose default Ray temp dir is this
        cluster's: it finds the cluster the way Ray finds a `ray start` cluster (the address
        file `ray_current_cluster`), as on a machine where `ray start --head` ran."""
        return self._base_env() | {"RAY_TMPDIR": str(self.base)} | extra

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalCluster:
        self.base.mkdir(parents=True, exist_ok=True)
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        self.gcs_port, self.dashboard_port, self.client_port = free_port(), free_port(), free_port()
        common = ["--object-store-memory", str(self.object_store_bytes), "--disable-usage-stats", "--block",
                  "--min-worker-port", "0", "--max-worker-port", "0"]
        # Every port picked free here, none of Ray's defaults: other Rays run on this machine.
        ports = lambda: ["--dashboard-agent-listen-port", str(free_port()),  # noqa: E731
                         "--dashboard-agent-grpc-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
                         "--metrics-export-port", str(free_port()), "--node-manager-port", str(free_port()),
                         "--object-manager-port", str(free_port())]
        try:
            self._start_node("head", lambda: [
                "ray", "start", "--head", "--port", str(self.gcs_port), f"--temp-dir={self.temp_dir}",
                "--num-cpus", str(self.head_cpus), "--resources", json.dumps({"head": 1}),
                "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                "--dashboard-port", str(self.dashboard_port), "--ray-client-server-port", str(self.client_port),
                *ports(), *common], self._base_env())
            self.address = (self.temp_dir / "ray_current_cluster").read_text().strip()
            self._start_node("node2", lambda: [
                "ray", "start", "--address", self.address, "--num-cpus", str(self.worker_cpus),
                "--resources", json.dumps({"node2": 1}), *ports(), *common], self._base_env() | self.worker_env)
            if set(self.node_ids()) != {"head", "node2"}:
                raise ClusterError(f"expected nodes head and node2, found {self.nodes()}")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, name: str, cmd, env: dict[str, str], attempts: int = 4) -> None:
        """Start one node and wait until `ray start` says it runs. On a loaded machine a
        raylet can give up waiting for its dashboard agent's port file (a fixed ~15 s in Ray
        2.60, fatal): that attempt is stopped and the node started again, with new ports."""
        for attempt in range(1, attempts + 1):
            self._spawn(name, cmd(), env)
            try:
                self._wait_for_log(name)
                return
            except ClusterError:
                proc = self.procs.pop(name)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
                _kill_group(proc.pid)
                if attempt == attempts:
                    raise

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = open(self.base / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.base)
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.base / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ClusterError(f"`ray start` of {name} exited with {proc.returncode}:\n{tail}")

    def _wait_for_log(self, name: str) -> None:
        """Until `ray start` says the node runs (it registered with the GCS)."""
        log = self.base / f"{name}.log"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            if "Ray runtime started" in log.read_text(errors="replace"):
                return
            time.sleep(0.5)
        raise ClusterError(f"{name} did not start within {self.start_timeout_s:.0f} s")

    def nodes(self) -> list[dict[str, Any]]:
        """Alive nodes as {'node_id', 'resources'}, read by a short-lived driver process."""
        code = ("import json, ray; ray.init(logging_level='ERROR', log_to_driver=False); "
                "print(json.dumps([{'node_id': n['NodeID'], 'resources': n['Resources']} "
                "for n in ray.nodes() if n['Alive']]))")
        out = subprocess.run([sys.executable, "-c", code], env=self.env(), capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            raise ClusterError(f"could not list nodes: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def node_ids(self) -> dict[str, str]:
        """'head' / 'node2' -> node id."""
        ids = {}
        for n in self.nodes():
            for name in ("head", "node2"):
                if name in n["resources"]:
                    ids[name] = n["node_id"]
        return ids

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM each node's `ray start` (it stops what it started), then SIGKILL its process
        group and any process still running from this cluster's temp dir."""
        for name in ("node2", "head"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
            _kill_group(proc.pid)
            proc.wait(timeout=10)
        for pid in self.leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs.clear()

    def leftover_pids(self) -> list[int]:
        """Processes whose command line names this cluster's temp dir or token (its own only)."""
        marks = (str(self.temp_dir), str(self.token_path))
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(m in cmd for m in marks):
                pids.append(int(d.name))
        return pids

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def worker_cpu_report(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What the libraries see on each node's workers: node name -> CPU dispatch facts."""
    code = r"""
import json, ray
ray.init(logging_level="ERROR", log_to_driver=False)
def probe():
    import os, cv2, torch
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return {"opencv": cv2.getCPUFeaturesLine(), "torch": torch.backends.cpu.get_cpu_capability(),
            "numpy": [f for f in __cpu_dispatch__ if __cpu_features__.get(f)],
            "env": {k: os.environ.get(k) for k in ("OPENCV_CPU_DISABLE", "NPY_DISABLE_CPU_FEATURES", "ATEN_CPU_CAPABILITY")}}
out = {}
for name in ("head", "node2"):
    out[name] = ray.get(ray.remote(num_cpus=1, resources={name: 0.001})(probe).remote())
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise ClusterError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])



