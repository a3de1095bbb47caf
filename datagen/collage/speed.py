"""Speed of the collage generator against the PNG encoding every sample pays anyway.

The target: generating a sample plus encoding it costs <= 1.6x encoding it alone, so the
generator must cost well under half of `to_row` (which PNG-encodes every input, output
and region mask). `benchmarks/` can call `measure` and `markdown`; nothing else uses this.
"""

from __future__ import annotations

import time

from datagen.collage.pack import AssetPack
from datagen.collage.tasks import TASKS, CollageSpec, generate
from datagen.rng import sample_rng
from datagen.schema import Reject, to_row

TARGET = 1.6


def measure(pack: AssetPack, size: int = 512, per_task: int = 20, tasks=TASKS, seed: int = 7) -> list[dict]:
    """Per task: mean ms to generate and to encode (to_row), and (generate + encode) / encode."""
    pack.prepared(size)  # once per worker in a real run; not part of the per-sample cost
    for task in tasks:  # warm fonts and caches, as a long-running worker would be
        generate(CollageSpec(task=task, size=size, assets=pack), sample_rng(seed, 10**6))
    rows = []
    for task in tasks:
        spec = CollageSpec(task=task, size=size, assets=pack)
        gen = enc = 0.0
        done = 0
        for i in range(per_task):
            t0 = time.perf_counter()
            sample = generate(spec, sample_rng(seed, i))
            t1 = time.perf_counter()
            if isinstance(sample, Reject):
                continue
            to_row(sample)
            gen, enc, done = gen + t1 - t0, enc + time.perf_counter() - t1, done + 1
        rows.append({"task": task, "samples": done, "generate_ms": 1000 * gen / max(done, 1),
                     "encode_ms": 1000 * enc / max(done, 1), "ratio": (gen + enc) / enc if enc else float("nan")})
    return rows


def markdown(rows: list[dict], size: int) -> str:
    lines = [f"Collage generation vs PNG encoding at {size}px (target: ratio <= {TARGET})", "",
             "| task | generate ms | encode ms | (gen+enc)/enc |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| `{r['task']}` | {r['generate_ms']:.1f} | {r['encode_ms']:.1f} | {r['ratio']:.2f} |" for r in rows]
    return "\n".join(lines)
