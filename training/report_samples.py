"""Generations of a checkpoint for the training card: fixed columns input 1..k | generated |
target, one row per task (families first, so a few rows cover many kinds of work), the task
and instruction under each row. A row without inputs leaves its input cells empty, so the
generated column is always in the same place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.report.contact_sheet import column_grid
from training.report_plots import family

INPUT, GENERATED, TARGET = (170, 170, 170), (60, 110, 220), (50, 170, 70)


def trained_refs(tc) -> list[str]:
    """Every dataset version the run read, stage by stage, first use first."""
    refs = list(tc.datasets) + [d for st in tc.stages for d in st.get("datasets", [])]
    return list(dict.fromkeys(refs))


def pick_rows(tasks_by_ref: dict[str, list[str]], max_rows: int) -> list[tuple[str, int]]:
    """(ref, position) of the first row of each task, one family after another before a second
    task of any family, at most `max_rows`."""
    first: dict[str, tuple[str, int]] = {}
    for ref, tasks in tasks_by_ref.items():
        for pos, task in enumerate(tasks):
            first.setdefault(task, (ref, pos))
    by_family: dict[str, list[str]] = {}
    for task in sorted(first):
        by_family.setdefault(family(task), []).append(task)
    order: list[str] = []
    while any(by_family.values()):
        for fam in sorted(by_family):
            if by_family[fam]:
                order.append(by_family[fam].pop(0))
    return [first[t] for t in order[:max_rows]]


def generations(checkpoint: str, steps: int = 20, max_rows: int = 6) -> list[dict[str, Any]]:
    """Per picked row: task, instruction, the fitted input images, the first generated and the
    first target image (and how many outputs the row has)."""
    from datagen.images import decode
    from datagen.store import lance_io
    from models.image_space import load_image_space
    from models.sampling import sample
    from models.text_encoder import TextEncoder
    from training.inference import load_for_sampling
    from training.text_cache import final_text

    loaded = load_for_sampling(checkpoint)
    tc, c = loaded.config, loaded.model.config
    encoder = TextEncoder(tc.text_encoder or None, max_length=tc.text_max_tokens)
    space = load_image_space(None if tc.image_space == "pixels" else tc.image_space)
    datasets = {ref: lance_io.open_dataset(ref) for ref in trained_refs(tc)}
    tasks = {ref: ds.to_table(columns=["task"]).column("task").to_pylist() for ref, ds in datasets.items()}
    out = []
    for ref, pos in pick_rows(tasks, max_rows * 3):  # spare picks: rows the model cannot take are skipped
        if len(out) >= max_rows:
            break
        row = datasets[ref].take([pos], columns=["task", "instruction", "inputs", "outputs"]).to_pylist()[0]
        if not row["outputs"] or len(row["inputs"] or []) > c.max_inputs or len(row["outputs"]) > c.max_outputs:
            continue
        target = loaded.fit(decode(row["outputs"][0]["data"]), row["outputs"][0]["role"] or "")
        inputs = [loaded.fit(decode(p["data"]), p["role"] or "") for p in row["inputs"] or []]
        text = final_text(row["instruction"], len(row["outputs"]), tc.text_prefix_outputs)
        # As many outputs as the row has (the instruction may say how many); the first one is shown.
        generated = sample(loaded.model, inputs, text, steps=steps, cfg=2.0, seed=0, size=target.shape[:2],
                           n_outputs=len(row["outputs"]), text_encoder=encoder, image_space=space)[0]
        out.append({"task": row["task"], "instruction": row["instruction"] or "", "inputs": inputs,
                    "generated": generated, "target": target, "outputs": len(row["outputs"])})
    return out


def grid_png(rows: list[dict[str, Any]], tile_px: int = 112) -> bytes | None:
    """The generations as one PNG with fixed columns (see the module doc)."""
    from datagen.images import encode_png

    if not rows:
        return None
    k = max(len(r["inputs"]) for r in rows)
    headers = [f"input {i + 1}" if k > 1 else "input" for i in range(k)] + ["generated", "target"]
    cells = [[*(r["inputs"] + [None] * (k - len(r["inputs"]))), r["generated"], r["target"]] for r in rows]
    # the output count first: a long instruction is cut at three lines
    captions = [f"{r['task']}" + (f" (output 1 of {r['outputs']} shown)" if r["outputs"] > 1 else "")
                + f"  |  {r['instruction'] or '(no instruction)'}" for r in rows]
    return encode_png(column_grid(cells, headers, captions, [INPUT] * k + [GENERATED, TARGET], tile_px=tile_px))


def preview_png(checkpoint: str, steps: int = 20, max_rows: int = 6) -> bytes | None:
    return grid_png(generations(checkpoint, steps=steps, max_rows=max_rows))
