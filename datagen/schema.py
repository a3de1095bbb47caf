"""The one record every UniMontage dataset shares: a many-to-many sample.

N input images + an instruction -> M output images (iMontage's framing). N may be 0: plain
text-to-image (t2i.*). MIGE's subject generation is not that case: it edits a blank canvas,
so its samples have N >= 2 inputs (the blank canvas, then one or more subject references;
collage task ref.canvas). Every dataset uses
`SAMPLE_SCHEMA`, so the trainer can mix any of them; every rejected input becomes one row
of `REJECT_SCHEMA` in `<dataset>_rejects`, so inputs = kept + rejected for every run.

In memory a sample holds numpy pixels (`Picture`, boolean region masks); `to_row` encodes
them once, `from_row` decodes a stored row back, so checkers and tests see pixels.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from datagen import images

SCHEMA_VERSION = "1"
# Fixed namespace: sample ids are stable across machines and releases.
ID_NAMESPACE = uuid.UUID("6f1c3d2e-9a57-4b8e-8f0c-3c1a5e7d2b90")

IMAGE_TYPE = pa.struct(
    [
        pa.field("data", pa.large_binary()),
        pa.field("format", pa.string()),  # "png" | "jpeg"
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("role", pa.string()),  # "source", "target", "reference", "condition", "mask", ...
    ]
)

REGION_TYPE = pa.struct(
    [
        pa.field("name", pa.string()),  # what the instruction calls it: "added", "removed", "subject:0", ...
        pa.field("side", pa.string()),  # "input" | "output"
        pa.field("image", pa.int32()),  # index into inputs or outputs
        pa.field("box", pa.list_(pa.float32(), 4)),  # x0, y0, x1, y1, normalised to [0, 1]; 6 decimals
        pa.field("mask", pa.large_binary()),  # 1-channel PNG (0/255) at the image's size; may be null
    ]
)

SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("index", pa.int64(), nullable=False),  # position in the run's plan
        pa.field("task", pa.string(), nullable=False),
        pa.field("instruction", pa.string()),
        pa.field("inputs", pa.list_(IMAGE_TYPE)),
        pa.field("outputs", pa.list_(IMAGE_TYPE)),
        pa.field("regions", pa.list_(REGION_TYPE)),
        pa.field("scores", pa.map_(pa.string(), pa.float64())),  # 6 significant digits (quantize)
        pa.field("scorer", pa.string()),
        pa.field("weight", pa.float32()),  # sampling weight the trainer honours (1.0 = neutral); 6 sig. digits
        pa.field("meta", pa.string()),  # JSON object of task parameters; floats at 6 significant digits
        pa.field("source_ids", pa.list_(pa.string())),
        pa.field("seed", pa.int64()),
        pa.field("generator", pa.string()),  # "module@version"
        pa.field("run_id", pa.string()),
    ],
    metadata={"unimontage.schema": "sample", "unimontage.schema_version": SCHEMA_VERSION},
)

REJECT_SCHEMA = pa.schema(
    [
        pa.field("reject_id", pa.string(), nullable=False),
        pa.field("index", pa.int64()),  # plan index, or -1 for inputs rejected before planning
        pa.field("stage", pa.string()),  # "source", "generate", "filter", "validate", ...
        pa.field("task", pa.string()),
        pa.field("source", pa.string()),  # file path, URI#row or source id of the rejected input
        pa.field("reason", pa.string()),  # stable short code: corrupt_image, static_pair, ...
        pa.field("detail", pa.string()),  # human-readable explanation
        pa.field("meta", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("generator", pa.string()),
        pa.field("run_id", pa.string()),
    ],
    metadata={"unimontage.schema": "reject", "unimontage.schema_version": SCHEMA_VERSION},
)

# Columns that differ between two runs of the same config; excluded from content hashes.
RUN_COLUMNS = ("run_id",)

PLACEHOLDER = re.compile(r"<image (\d+)>")
TASK_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


# --------------------------------------------------------------------------- in-memory record
@dataclass
class Picture:
    pixels: np.ndarray  # HxW, HxWx3 or HxWx4 uint8
    role: str
    format: str = "png"

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


@dataclass
class Region:
    name: str
    side: str  # "input" | "output"
    image: int
    mask: np.ndarray | None = None  # HxW bool
    box: tuple[float, float, float, float] | None = None  # normalised; derived from mask if None

    def resolved_box(self) -> tuple[float, float, float, float]:
        if self.box is not None:
            return tuple(float(v) for v in self.box)  # type: ignore[return-value]
        if self.mask is None:
            raise ValueError(f"region {self.name!r} has neither box nor mask")
        return mask_box(self.mask)


@dataclass
class Sample:
    task: str
    instruction: str
    inputs: list[Picture]
    outputs: list[Picture]
    regions: list[Region] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    scorer: str = ""
    weight: float = 1.0
    source_ids: list[str] = field(default_factory=list)
    generator: str = ""
    # Set by the harness when the sample joins a run:
    sample_id: str = ""
    index: int = -1
    seed: int = 0
    run_id: str = ""


@dataclass
class Reject:
    reason: str
    detail: str = ""
    source: str = ""
    task: str = ""
    stage: str = "generate"
    meta: dict[str, Any] = field(default_factory=dict)
    generator: str = ""
    index: int = -1
    seed: int = 0
    run_id: str = ""
    reject_id: str = ""


# --------------------------------------------------------------------------- stored floats
# Every float a dataset stores has a stated precision, so the SIMD level of the machine that
# made it (FMA, vector width, library kernels) cannot change a byte of the row:
# - scores, meta floats and sample weights: 6 significant digits (relative rounding error
#   <= 5e-7), and magnitudes below 1e-9 are stored as 0.0 (so last-bit noise around zero -
#   a cancellation that gives +-1e-17 on one CPU and 0 on another - cannot flip a sign);
# - region boxes: normalised coordinates rounded to 6 decimals (1e-6 of the image side,
#   far below a pixel), then stored as float32.
# Producers quantize where a value is computed, before any threshold is applied to it, so a
# borderline keep/reject decision is made on the value that is stored; `to_row` quantizes
# again (idempotent: quantize(quantize(x)) == quantize(x)) so nothing unquantized is stored.
# Residual risk: a value whose exact result lies within float noise (~1e-16 relative) of a
# rounding boundary can still round differently; see docs/reproducibility.md.
SIGNIFICANT_DIGITS = 6
ZERO_BELOW = 1e-9
BOX_DECIMALS = 6


def quantize(x: float) -> float:
    """`x` at the stored precision: 6 significant digits, |x| < 1e-9 -> 0.0. Idempotent."""
    x = float(x)
    if not math.isfinite(x):
        return x  # validate() rejects these; keep them visible rather than disguised
    if abs(x) < ZERO_BELOW:
        return 0.0
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def quantize_box(box) -> tuple[float, float, float, float]:
    """A normalised (x0, y0, x1, y1) box at the stored precision (6 decimals)."""
    return tuple(round(float(v), BOX_DECIMALS) + 0.0 for v in box)  # type: ignore[return-value]


def quantize_tree(obj: Any) -> Any:
    """Every float inside a JSON-like value (meta) quantized; ints, bools, strings untouched."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, (float, np.floating)):
        return quantize(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return quantize_tree(obj.tolist())
    if isinstance(obj, dict):
        return {k: quantize_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [quantize_tree(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- ids
def make_id(*parts: Any) -> str:
    """Deterministic uuid5 of the parts: re-running a config never mints new ids."""
    return str(uuid.uuid5(ID_NAMESPACE, "/".join(str(p) for p in parts)))


def mask_box_px(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight (x0, y0, x1, y1) pixel box of a mask, x1/y1 exclusive; None when it is empty."""
    # Row/column projections: a few times faster than np.nonzero on large masks.
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if len(cols) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Tight normalised (x0, y0, x1, y1) box of a boolean mask; x1/y1 are exclusive."""
    box = mask_box_px(mask)
    if box is None:
        return (0.0, 0.0, 0.0, 0.0)
    h, w = mask.shape[:2]
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)


# --------------------------------------------------------------------------- validation
class InvalidSample(ValueError):
    pass


def validate(sample: Sample) -> None:
    """Raise InvalidSample when the record breaks a rule every dataset relies on."""
    if not TASK_NAME.match(sample.task or ""):
        raise InvalidSample(f"task {sample.task!r} is not a dotted lower-case name")
    if not sample.outputs:
        raise InvalidSample("a sample needs at least one output image")
    refs = {int(k) for k in PLACEHOLDER.findall(sample.instruction or "")}
    n_in = len(sample.inputs)
    bad = sorted(k for k in refs if not 1 <= k <= n_in)
    if bad:
        raise InvalidSample(f"instruction names <image {bad[0]}> but the sample has {n_in} input(s)")
    for side, pics in (("input", sample.inputs), ("output", sample.outputs)):
        for k, pic in enumerate(pics):
            p = pic.pixels
            if p.dtype != np.uint8 or p.ndim not in (2, 3) or (p.ndim == 3 and p.shape[2] not in (1, 3, 4)):
                raise InvalidSample(f"{side} {k}: want uint8 HxW[x3|x4], got {p.dtype} {p.shape}")
            if pic.format not in ("png", "jpeg"):
                raise InvalidSample(f"{side} {k}: unknown format {pic.format!r}")
    for r in sample.regions:
        pics = sample.inputs if r.side == "input" else sample.outputs if r.side == "output" else None
        if pics is None:
            raise InvalidSample(f"region {r.name!r}: side must be input|output, not {r.side!r}")
        if not 0 <= r.image < len(pics):
            raise InvalidSample(f"region {r.name!r}: no {r.side} image {r.image}")
        if r.mask is not None and r.mask.shape[:2] != pics[r.image].pixels.shape[:2]:
            raise InvalidSample(f"region {r.name!r}: mask {r.mask.shape} != image {pics[r.image].pixels.shape[:2]}")
        x0, y0, x1, y1 = r.resolved_box()
        if not (0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0):
            raise InvalidSample(f"region {r.name!r}: box {r.resolved_box()} outside [0, 1]")
    for k, v in sample.scores.items():
        if not np.isfinite(v):
            raise InvalidSample(f"score {k!r} is {v}")
    if not np.isfinite(sample.weight) or sample.weight < 0:
        raise InvalidSample(f"weight {sample.weight} must be finite and >= 0")
    try:
        _json(sample.meta)
    except (TypeError, ValueError) as exc:
        raise InvalidSample(f"meta is not strict JSON: {exc}") from exc


# --------------------------------------------------------------------------- rows
def _json(obj: Any) -> str:
    # sort_keys: the same meta gives the same bytes, so content hashes are stable.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _image_row(pic: Picture) -> dict[str, Any]:
    return {
        "data": images.encode(pic.pixels, pic.format),
        "format": pic.format,
        "width": pic.width,
        "height": pic.height,
        "role": pic.role,
    }


def _region_row(r: Region) -> dict[str, Any]:
    mask = None if r.mask is None else images.encode_png(r.mask.astype(np.uint8) * 255)
    return {"name": r.name, "side": r.side, "image": r.image, "box": list(quantize_box(r.resolved_box())), "mask": mask}


def to_row(sample: Sample) -> dict[str, Any]:
    return {
        "sample_id": sample.sample_id,
        "index": sample.index,
        "task": sample.task,
        "instruction": sample.instruction,
        "inputs": [_image_row(p) for p in sample.inputs],
        "outputs": [_image_row(p) for p in sample.outputs],
        "regions": [_region_row(r) for r in sample.regions],
        "scores": sorted((k, quantize(v)) for k, v in sample.scores.items()),
        "scorer": sample.scorer,
        "weight": quantize(sample.weight),
        "meta": _json(quantize_tree(sample.meta)),
        "source_ids": list(sample.source_ids),
        "seed": int(sample.seed),
        "generator": sample.generator,
        "run_id": sample.run_id,
    }


def reject_row(rej: Reject) -> dict[str, Any]:
    return {
        "reject_id": rej.reject_id,
        "index": rej.index,
        "stage": rej.stage,
        "task": rej.task,
        "source": rej.source,
        "reason": rej.reason,
        "detail": rej.detail[:2000],
        "meta": _json(quantize_tree(rej.meta)),
        "seed": int(rej.seed),
        "generator": rej.generator,
        "run_id": rej.run_id,
    }


def samples_table(samples: list[Sample]) -> pa.Table:
    return pa.Table.from_pylist([to_row(s) for s in samples], schema=SAMPLE_SCHEMA)


def rejects_table(rejects: list[Reject]) -> pa.Table:
    return pa.Table.from_pylist([reject_row(r) for r in rejects], schema=REJECT_SCHEMA)


def from_row(row: dict[str, Any]) -> Sample:
    """Decode a stored row (as from `Table.to_pylist()`) back into pixels and masks."""

    def pics(items: list[dict[str, Any]] | None) -> list[Picture]:
        return [Picture(images.decode(it["data"]), it["role"], it["format"]) for it in items or []]

    regions = []
    for r in row.get("regions") or []:
        mask = None if r["mask"] is None else images.decode(r["mask"]) > 127
        regions.append(Region(r["name"], r["side"], r["image"], mask, tuple(r["box"])))
    scores = row.get("scores") or []
    scores = dict(scores.items() if isinstance(scores, dict) else scores)
    return Sample(
        task=row["task"],
        instruction=row["instruction"],
        inputs=pics(row.get("inputs")),
        outputs=pics(row.get("outputs")),
        regions=regions,
        meta=json.loads(row["meta"]) if row.get("meta") else {},
        scores=scores,
        scorer=row.get("scorer") or "",
        weight=float(row["weight"]) if row.get("weight") is not None else 1.0,
        source_ids=list(row.get("source_ids") or []),
        generator=row.get("generator") or "",
        sample_id=row["sample_id"],
        index=int(row["index"]),
        seed=int(row.get("seed") or 0),
        run_id=row.get("run_id") or "",
    )
