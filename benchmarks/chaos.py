"""Fault injection against real runs: `kill -9` a run at a random moment, re-run it, compare.

Each trial starts a collage run in its own process group (driver plus the private Ray it
starts), kills the whole group with SIGKILL after a random delay, re-runs the same command
to completion and compares the content hash with an uninterrupted reference run. Two
writers on one URI at the same time are a trial too: exactly one may commit, the other must
fail fast with a clear message, and nothing may be lost.

Training faults too: a Lance compaction of a dataset while a training run reads the version it
pinned (the run must finish on the same weights, or, if the old version's files are removed
under it, fail with a message naming the version), and corrupted checkpoints (bit flips,
truncation, a missing or cut lineage node): every load must refuse them or fall back to the
previous complete checkpoint, never load them silently.

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


# --------------------------------------------------------------------------- training faults
def training_inputs(folder: Path) -> dict[str, Any]:
    """A 24-row photo dataset whose latest version is 6 fragments (as many small shards leave it,
    so compaction rewrites it), a tiny text encoder and a tiny 1-worker config that checkpoints
    every 2 of 8 steps."""
    import lance

    from datagen.store import lance_io
    from tests.test_training_support import TEST_MODEL, make_photo_dataset, make_text_encoder

    uri = lance_io.split_version(make_photo_dataset(folder / "photos.lance", num=24, seed=4,
                                                    tasks=["t2i.photo", "edit.remove"]))[0]
    ds = lance.dataset(uri)
    table = ds.to_table()
    frags = [f for lo in range(0, table.num_rows, 4) for f in lance_io.write_uncommitted(table.slice(lo, 4), uri, ds.schema)]
    ref = f"{uri}@{lance_io.commit(uri, ds.schema, frags, lance_io.read_lineage(ds)).version}"
    config = {"model_overrides": TEST_MODEL, "text_encoder": str(make_text_encoder(folder / "te")), "datasets": [ref],
              "batch_size": 4, "batch_tokens": 512, "num_workers": 1, "cpus_per_worker": 1, "data_tasks": 1,
              "prefetch_steps": 1, "max_steps": 8, "checkpoint_every": 2, "log_every": 1, "seed": 5,
              "keep_checkpoints": 10, "max_failures": 0, "lr": 2e-3, "warmup_steps": 1}
    return {"ref": ref, "config": config}


def _last_weights(run_dir: str) -> str | None:
    from training.job import list_checkpoints
    from training.lineage import read_node

    found = list_checkpoints(run_dir)
    return (read_node(found[-1]) or {}).get("weights_sha256") if found else None


def compaction_during_training(folder: Path, inputs: dict[str, Any], *, remove_old: bool = False,
                               reference: str | None = None) -> dict[str, Any]:
    """Train on the pinned version; once the first checkpoint is in, compact the dataset (a new
    version) and, with `remove_old`, delete every older version's files (Lance cleanup). Runs in
    this process (Ray Train's driver wants the main thread; the compaction runs in a thread)."""
    import datetime
    import threading

    import lance

    from datagen.store import lance_io
    from training.config import TrainConfig
    from training.job import read_history, run_training

    uri = lance_io.split_version(inputs["ref"])[0]
    out = folder / f"runs-{'remove-old' if remove_old else 'compact'}"
    seen: dict[str, Any] = {}

    def compact() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not list(out.glob("*/checkpoint_*/lineage.json")):
            time.sleep(0.05)
        run_dir = next(out.glob("*/checkpoint_*/lineage.json")).parent.parent
        seen["steps_before"] = len(read_history(str(run_dir)))
        ds = lance.dataset(uri)
        before = len(ds.get_fragments())
        ds.optimize.compact_files()  # moves `ds` to the new version
        if remove_old:
            lance.dataset(uri).cleanup_old_versions(older_than=datetime.timedelta(0), delete_unverified=True)
        after = lance.dataset(uri)
        seen.update(fragments=[before, len(after.get_fragments())], version=after.version,
                    steps_after=len(read_history(str(run_dir))))

    worker = threading.Thread(target=compact, daemon=True)
    worker.start()
    try:
        res = run_training(TrainConfig.from_dict(inputs["config"]), out=str(out))
        outcome = {"finished": True, "step": res.step, "run_dir": res.run_dir,
                   "decode_errors": sum(r["decode_errors"] for r in res.history), "weights": _last_weights(res.run_dir)}
    except RuntimeError as exc:
        outcome = {"finished": False, "error": str(exc).splitlines()[0][:600]}
    worker.join(timeout=600)
    outcome.update(seen, remove_old=remove_old, pinned=inputs["ref"],
                   during=seen.get("steps_after", 0) < inputs["config"]["max_steps"])
    if reference and outcome["finished"]:
        outcome["same_weights"] = outcome["weights"] == reference
    outcome["ok"] = (outcome["finished"] and outcome["decode_errors"] == 0 and outcome.get("same_weights", True)) or \
        (not outcome["finished"] and f"dataset version {inputs['ref']}" in outcome["error"])
    return outcome


CHECKPOINT_FAULTS = ("bit_flip", "truncate", "no_node", "cut_node")


def corrupt(folder: Path, fault: str, rng: np.random.Generator) -> str:
    """Damage one checkpoint folder; return what was done."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != "lineage.json")
    node = folder / "lineage.json"
    if fault == "bit_flip":
        target = files[int(rng.integers(len(files)))]
        data = bytearray(target.read_bytes())
        at = int(rng.integers(len(data)))
        data[at] ^= 1 << int(rng.integers(8))
        target.write_bytes(bytes(data))
        return f"bit {at} of {target.name}"
    if fault == "truncate":
        target = files[int(rng.integers(len(files)))]
        data = target.read_bytes()
        target.write_bytes(data[: int(rng.integers(len(data)))])
        return f"{target.name} cut to fewer bytes"
    if fault == "no_node":
        node.unlink()
        return "lineage.json removed (a writer killed before its completion marker)"
    text = node.read_text()
    node.write_text(text[: int(rng.integers(1, len(text)))])
    return "lineage.json cut short"


def corrupted_checkpoint_trials(run_dir: str, folder: Path, n: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    """Copy a finished run, damage one of its checkpoints, then load it every way a user can:
    the damaged folder itself (init_from, sampling, `lineage --verify`), the run (its latest),
    and the resume check. `silent` counts loads of damaged bytes: it must be 0."""
    import shutil

    from datagen.store.lineage import verify_checkpoint
    from training import checkpointing, job
    from training.inference import load_for_sampling

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        run = folder / f"corrupt-{i}" / Path(run_dir).name
        shutil.copytree(run_dir, run)
        ckpts = job.list_checkpoints(str(run))
        target = Path(ckpts[-1] if i % 2 == 0 else ckpts[int(rng.integers(len(ckpts)))])  # the latest half the time
        fault = CHECKPOINT_FAULTS[i % len(CHECKPOINT_FAULTS)]
        what = corrupt(target, fault, rng)
        trial = {"fault": fault, "what": what, "checkpoint": target.name, "latest": str(target) == ckpts[-1],
                 "verify_flagged": not verify_checkpoint(str(target))["ok"], "silent": 0}
        try:
            checkpointing.load_model(target)
            trial["direct"], trial["silent"] = "loaded", trial["silent"] + 1
        except (checkpointing.CheckpointError, FileNotFoundError, ValueError) as exc:
            trial["direct"] = f"refused: {str(exc)[:160]}"
        try:
            loaded = load_for_sampling(run)
            trial["run"] = "fell back to " + Path(loaded.path).name if str(loaded.path) != ckpts[-1] else "latest"
            if str(loaded.path) == str(target):
                trial["silent"] += 1
        except checkpointing.CheckpointError as exc:
            trial["run"] = f"refused: {str(exc)[:160]}"
        try:
            job.check_resume_point(str(run))
            trial["resume"] = "allowed" if not trial["latest"] else "allowed (damaged latest!)"
            trial["silent"] += int(trial["latest"])
        except checkpointing.CheckpointError:
            trial["resume"] = "refused"
        out.append(trial)
    return out


def training_trials(folder: Path, n: int = 8) -> dict[str, Any]:
    """The slow version of the fast test: a reference run, compaction during a run (same weights),
    old versions removed during a run (finishes on the same weights or fails naming the version),
    and `n` corrupted-checkpoint trials."""
    from compute.ray_adapter import ensure_ray
    from training.config import TrainConfig
    from training.job import run_training

    ensure_ray(2)
    inputs = training_inputs(folder)
    t0 = time.perf_counter()
    reference = run_training(TrainConfig.from_dict(inputs["config"]), out=str(folder / "runs-reference"))
    ref_s = time.perf_counter() - t0
    weights = _last_weights(reference.run_dir)
    compacted = compaction_during_training(folder, inputs, reference=weights)
    inputs_removed = training_inputs(folder / "second")  # a fresh dataset: the first one is compacted now
    removed = compaction_during_training(folder / "second", inputs_removed, remove_old=True)
    return {"reference_seconds": round(ref_s, 1), "reference_weights": weights, "compaction": compacted,
            "old_versions_removed": removed,
            "checkpoints": corrupted_checkpoint_trials(reference.run_dir, folder / "corrupt", n=n)}


def main(n: int = int(os.environ.get("CHAOS_TRIALS", "12"))) -> str:
    import tempfile

    from benchmarks.run_all import RESULTS

    with tempfile.TemporaryDirectory(prefix="unimontage-chaos-") as tmp:
        report = trials(Path(tmp), n=n, num=48)
        report["crashes"] = crash_trials(Path(tmp))
        report["training"] = training_trials(Path(tmp) / "training", n=max(8, n))
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
    tr = report["training"]
    comp, rem, ckpts = tr["compaction"], tr["old_versions_removed"], tr["checkpoints"]
    lines.append(f"| Lance compaction of the dataset during a training run (same final weights) | 1 | {int(comp['ok'])} | 0 |")
    lines.append(f"| old versions removed during a training run (finishes, or fails naming the pinned version) | 1 | "
                 f"{int(rem['ok'])} | 0 |")
    silent = sum(t["silent"] for t in ckpts)
    lines.append(f"| corrupted checkpoint ({', '.join(CHECKPOINT_FAULTS)}) | {len(ckpts)} | "
                 f"{sum(t['silent'] == 0 and t['verify_flagged'] for t in ckpts)} | 0 |")
    resumed = [k["resumed_shards"] for k in kills]
    lines += ["", f"Kill trials resumed {min(resumed)}-{max(resumed)} finished shards of 12; in the concurrent trial "
              f"{conc['committed']} writer committed and {conc['failed']} stopped with a clear message. "
              f"Rows lost or duplicated in all trials: **{lost}**.",
              "", f"Training (tiny model, 8 steps, reference {tr['reference_seconds']} s): compaction "
              f"{comp['fragments'][0]} -> {comp['fragments'][1]} fragments at step {comp['steps_before']} of 8, "
              f"final weights {'equal to' if comp.get('same_weights') else 'DIFFERENT from'} the reference; with old "
              f"versions removed the run {'finished' if rem['finished'] else 'failed: ' + rem.get('error', '')[:160]}. "
              f"Corrupted checkpoints loaded silently: **{silent}** of {len(ckpts)} trials."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
