"""Fault injection against real runs: `kill -9` a run at a random moment, re-run it, compare.

Each trial starts a collage run in its own process group (driver plus the private Ray it
starts), kills the whole group with SIGKILL after a random delay, re-runs the same command
to completion and compares the content hash with an uninterrupted reference run. Two
writers on one URI at the same time are a trial too: exactly one may commit, the other must
fail fast with a clear message, and nothing may be lost.

Used by the test suite (a few trials) and by `make chaos` (many, figures for the README).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RUN = """
import json, sys
from compute import harness
spec = harness.plan_run("collage", out=sys.argv[1], num=int(sys.argv[2]), seed=7, size=64, shard_size=4,
                        tasks=["edit.add", "t2i.shapes", "drag.translate"])
res = harness.execute(spec, workers=2, progress=False)
print(json.dumps(res.summary()))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", TQDM_DISABLE="1")
    env.pop("RAY_ADDRESS", None)
    return env


def start(out: str, num: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUN, out, str(num)], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, dict[str, Any] | None, str]:
    out, err = proc.communicate(timeout=timeout)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    return proc.returncode, (json.loads(lines[-1]) if lines else None), err


def run(out: str, num: int) -> dict[str, Any]:
    code, summary, err = finish(start(out, num))
    if code != 0 or summary is None:
        raise RuntimeError(f"run failed ({code}): {err[-2000:]}")
    return summary


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def accounting(out: str, num: int) -> dict[str, int]:
    """Inputs seen exactly once across samples and rejects: `lost` and `duplicated` must be 0."""
    import lance

    from datagen.store import lance_io

    seen = lance.dataset(out).to_table(columns=["index"]).column("index").to_pylist()
    seen += lance.dataset(lance_io.rejects_uri(out)).to_table(columns=["index"]).column("index").to_pylist()
    return {"lost": len(set(range(num)) - set(seen)), "duplicated": len(seen) - len(set(seen))}


def kill_trial(folder: Path, num: int, delay_s: float, reference: str) -> dict[str, Any]:
    """kill -9 after `delay_s`, re-run, compare with the reference content hash."""
    out = str(folder / f"killed-{delay_s:.2f}.lance")
    proc = start(out, num)
    time.sleep(delay_s)
    finished_first = proc.poll() is not None
    kill_group(proc)
    resumed = run(out, num)
    return {"delay_s": round(delay_s, 2), "finished_before_kill": finished_first,
            "resumed_shards": resumed["resumed_shards"], "same_hash": resumed["content_hash"] == reference,
            **accounting(out, num)}


def concurrent_trial(folder: Path, num: int, reference: str) -> dict[str, Any]:
    """Two writers on one URI at once: one commits, the other fails fast; no row is lost."""
    out = str(folder / "concurrent.lance")
    a = start(out, num)
    time.sleep(0.5)
    b = start(out, num)
    (ca, sa, ea), (cb, sb, eb) = finish(a), finish(b)
    winners = [s for c, s in ((ca, sa), (cb, sb)) if c == 0 and s]
    losers = [e for c, e in ((ca, ea), (cb, eb)) if c != 0]
    clear = all(("being written by run" in e) or ("written by another run" in e) for e in losers)
    final = run(out, num)  # whatever happened, a re-run completes to the reference
    return {"committed": len(winners), "failed": len(losers), "failed_clearly": clear,
            "same_hash": final["content_hash"] == reference, **accounting(out, num)}


def trials(folder: Path, n: int, num: int = 48, seed: int = 0) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    reference = run(str(folder / "reference.lance"), num)
    ref_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    kills = [kill_trial(folder, num, float(rng.uniform(0.5, max(1.0, ref_s))), reference["content_hash"])
             for _ in range(n)]
    return {"reference": reference, "reference_seconds": round(ref_s, 1), "kills": kills,
            "concurrent": concurrent_trial(folder, num, reference["content_hash"])}
