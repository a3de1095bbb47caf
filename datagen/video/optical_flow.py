"""Dense optical flow backends: DIS (default; "dis_fine" one pyramid level finer), Farneback,
and RAFT (torchvision, local weights).

All backends take two uint8 greyscale frames of the same size (RAFT also accepts RGB) and
return an HxWx2 float32 field in pixels of the frames they were given: flow[y, x] is where
pixel (x, y) of the first frame moved to in the second, minus (x, y).

DIS and Farneback need no weights. RAFT loads a torchvision state dict from a local folder
(no hub access); tests build one with random weights to prove the plumbing.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import cv2
import numpy as np

from datagen.weights import require_files

METHODS = ("dis", "dis_fine", "farneback", "raft")

# torchvision's own file names, so weights downloaded by torchvision on another machine can be
# copied into the folder as they are.
RAFT_FILES = {
    "raft_small": "raft_small_C_T_V2-01064c6d.pth",
    "raft_large": "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
}

_local = threading.local()
# FAST: ~2 ms at 320x180. MEDIUM (variational refinement, finer patches) is ~4x slower and
# no more accurate here, because the coarse camera model leaves DIS only a small residual.
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_FAST


def _dis(shape: tuple[int, ...], preset: int, finest: int) -> cv2.DISOpticalFlow:
    # One instance per thread and frame size: DIS keeps scratch buffers sized to the last
    # call (alternating sizes reallocates them every call, 4x slower), and Ray may run
    # several tasks in threads of one worker.
    cache = getattr(_local, "dis", None)
    if cache is None:
        cache = _local.dis = {}
    key = (shape, preset, finest)
    dis = cache.get(key)
    if dis is None:
        dis = cache[key] = cv2.DISOpticalFlow.create(preset)
        dis.setFinestScale(finest)
    return dis


def dis_flow(grey_a: np.ndarray, grey_b: np.ndarray, finest: int = 2, preset: int = DIS_PRESET) -> np.ndarray:
    """DIS flow (FAST preset). `finest` is the pyramid level it stops at: 2 (the preset's
    own) solves at 1/4 of the input and upsamples, ~2 ms at 320x180 and enough for camera
    motion; 1 (~6 ms) also follows small moving objects; 0 (~23 ms) is full resolution."""
    return _dis(grey_a.shape, preset, finest).calc(grey_a, grey_b, None)


def farneback_flow(grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
    # Enough pyramid levels that the coarsest level sees motions of ~1/8 of the frame as a
    # few pixels; the 3-level default is what makes Farneback under-read large shifts.
    levels = max(3, int(np.log2(max(grey_a.shape) / 16)))
    return cv2.calcOpticalFlowFarneback(
        grey_a, grey_b, None, pyr_scale=0.5, levels=levels, winsize=21, iterations=5, poly_n=7, poly_sigma=1.5, flags=0
    )


# --------------------------------------------------------------------------- RAFT
def raft_weights_file(folder: str | Path, variant: str = "raft_small") -> Path:
    """The state-dict file RAFT expects in `folder`, or MissingWeights naming it."""
    if variant not in RAFT_FILES:
        raise ValueError(f"unknown RAFT variant {variant!r}; choose one of {sorted(RAFT_FILES)}")
    found = require_files(f"RAFT ({variant})", Path(folder), [RAFT_FILES[variant]],
                          hint=f"put torchvision's {variant} state dict there (no model hub is reachable)")
    return found[RAFT_FILES[variant]]


@functools.lru_cache(maxsize=2)
def load_raft(folder: str, variant: str = "raft_small"):
    """torchvision RAFT in eval mode with weights from a local folder (loaded once per process)."""
    import torch
    from torchvision.models import optical_flow

    path = raft_weights_file(folder, variant)
    model = getattr(optical_flow, variant)(weights=None, progress=False)
    # weights_only: the file comes from outside the project and must not run code on load.
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def raft_flow(img_a: np.ndarray, img_b: np.ndarray, folder: str | Path, variant: str = "raft_small") -> np.ndarray:
    import torch

    model = load_raft(str(folder), variant)

    def tensor(img: np.ndarray) -> torch.Tensor:
        rgb = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
        t = torch.from_numpy(np.ascontiguousarray(rgb[:, :, :3])).permute(2, 0, 1).float()
        return (t / 127.5 - 1.0)[None]  # RAFT was trained on [-1, 1] inputs

    h, w = img_a.shape[:2]
    # RAFT needs sides divisible by 8 and at least 128 (its correlation pyramid): pad by
    # edge replication, crop the result back.
    ph, pw = max((-h) % 8, 128 - h), max((-w) % 8, 128 - w)
    ta, tb = tensor(img_a), tensor(img_b)
    if ph or pw:
        ta = torch.nn.functional.pad(ta, (0, pw, 0, ph), mode="replicate")
        tb = torch.nn.functional.pad(tb, (0, pw, 0, ph), mode="replicate")
    with torch.inference_mode():
        flows = model(ta, tb, num_flow_updates=12)
    return flows[-1][0, :, :h, :w].permute(1, 2, 0).numpy().astype(np.float32)


def dense_flow(
    img_a: np.ndarray, img_b: np.ndarray, method: str = "dis", *, raft_dir: str | Path | None = None
) -> np.ndarray:
    """HxWx2 flow from `img_a` to `img_b` (uint8 grey; RAFT also takes RGB)."""
    if method == "dis":
        return dis_flow(_grey(img_a), _grey(img_b))
    if method == "dis_fine":
        return dis_flow(_grey(img_a), _grey(img_b), finest=1)
    if method == "farneback":
        return farneback_flow(_grey(img_a), _grey(img_b))
    if method == "raft":
        if raft_dir is None:
            raise ValueError("method='raft' needs raft_dir, the folder holding the RAFT weights")
        return raft_flow(img_a, img_b, raft_dir)
    raise ValueError(f"unknown flow method {method!r}; choose one of {METHODS}")


def _grey(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img[:, :, :3], cv2.COLOR_RGB2GRAY)
