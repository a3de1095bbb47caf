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


def crash_trials(folder: Path, n_items: int = 64, crash_every: int = 16) -> dict[str, Any]:
    """Segfaulting items inside a real run (actors and tasks): each must become one reject."""
    import cloudpickle
    import lance

    import tests.faulty_product as faulty
    from compute import harness
    from compute.ray_adapter import ensure_ray

    cloudpickle.register_pickle_by_value(faulty)
    ensure_ray(2)
    out = {}
    crash = tuple(range(3, n_items, crash_every))
    for mode in ("actors", "tasks"):
        spec = harness.prepare(faulty.PRODUCT, faulty.FaultyConfig(num=n_items, crash=crash, hang=(n_items - 2,),
                                                                   reuse_setup=mode == "actors"),
                               out=str(folder / f"crash-{mode}.lance"))
        t0 = time.perf_counter()
        res = harness.execute(spec, workers=2, progress=False, item_timeout_s=2.0, setup_timeout_s=60.0)
        reasons = lance.dataset(res.rejects_uri).to_table(columns=["reason"]).column("reason").to_pylist()
        out[mode] = {"items": n_items, "crashing": len(crash), "hanging": 1, "seconds": round(time.perf_counter() - t0, 1),
                     "worker_crashed": reasons.count("worker_crashed"), "timeout": reasons.count("timeout"),
                     **accounting(res.uri, n_items)}
    return out


def main(n: int = int(os.environ.get("CHAOS_TRIALS", "12"))) -> str:
    import tempfile

    from benchmarks.run_all import RESULTS

    with tempfile.TemporaryDirectory(prefix="unimontage-chaos-") as tmp:
        report = trials(Path(tmp), n=n, num=48)
        report["crashes"] = crash_trials(Path(tmp))
    (RESULTS / "chaos.json").write_text(json.dumps(report, indent=1))
    kills = report["kills"]
    conc, crashes = report["concurrent"], report["crashes"]
    lost = sum(k["lost"] + k["duplicated"] for k in kills) + conc["lost"] + conc["duplicated"]
    lost += sum(c["lost"] + c["duplicated"] for c in crashes.values())
    lines = [
        "## Fault injection (`make chaos`)",
        "",
        f"Collage runs of 48 samples (2 workers, shards of 4) in their own process group; uninterrupted reference "
        f"{report['reference_seconds']} s. Each kill trial sends SIGKILL to the whole group (driver and its Ray) at a "
        "random moment, then re-runs the same command.",
        "",
        "| fault | trials | survived (same content hash, every input exactly once) | rows lost or duplicated |",
        "|---|---:|---:|---:|",
        f"| kill -9 at a random moment, then re-run | {len(kills)} | {sum(k['same_hash'] and not k['lost'] and not k['duplicated'] for k in kills)} | {sum(k['lost'] + k['duplicated'] for k in kills)} |",
        f"| two writers on one URI at once | 1 | {int(conc['same_hash'] and conc['failed_clearly'] and not conc['lost'])} | {conc['lost'] + conc['duplicated']} |",
    ]
    for mode, c in crashes.items():
        ok = c["worker_crashed"] == c["crashing"] and c["timeout"] == c["hanging"] and not c["lost"]
        lines.append(f"| {c['crashing']} segfaulting + {c['hanging']} hanging item(s) of {c['items']}, {mode} | 1 | "
                     f"{int(ok)} | {c['lost'] + c['duplicated']} |")
    resumed = [k["resumed_shards"] for k in kills]
    lines += ["", f"Kill trials resumed {min(resumed)}-{max(resumed)} finished shards of 12; in the concurrent trial "
              f"{conc['committed']} writer committed and {conc['failed']} stopped with a clear message. "
              f"Rows lost or duplicated in all trials: **{lost}**."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
