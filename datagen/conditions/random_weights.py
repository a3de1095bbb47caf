"""Random-weight checkpoints in the exact layouts the model-backed annotators load.

No machine here has the real weights, so tests and benchmarks build the same architectures
(controlnet_aux's own model classes; a tiny or Small-sized Depth-Anything-V2 config), fill
them from a seeded generator and write them where the annotators look: this proves the
loading and inference plumbing end to end, and gives the real compute cost for the
controlnet_aux models (same shapes as the real files). The maps mean nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from datagen.conditions.controlnet_aux_backend import import_controlnet_aux


def _aux_models() -> dict[str, tuple[Callable[[], Any], Callable[[str], str]]]:
    """file name -> (model factory, state-dict key -> key as stored in the file)."""
    import_controlnet_aux()
    from controlnet_aux.hed import ControlNetHED_Apache2
    from controlnet_aux.lineart import Generator
    from controlnet_aux.mlsd.models.mbv2_mlsd_large import MobileV2_MLSD_Large
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.model import bodypose_model, handpose_model

    same: Callable[[str], str] = lambda k: k  # noqa: E731

    def drop_first(k: str) -> str:  # the pose files predate the model's stage grouping
        return k.split(".", 1)[1]

    return {
        "ControlNetHED.pth": (ControlNetHED_Apache2, same),
        "sk_model.pth": (lambda: Generator(3, 1, 3), same),
        "sk_model2.pth": (lambda: Generator(3, 1, 3), same),
        "body_pose_model.pth": (bodypose_model, drop_first),
        "hand_pose_model.pth": (handpose_model, drop_first),
        "facenet.pth": (FaceNet, same),
        "mlsd_large_512_fp32.pth": (MobileV2_MLSD_Large, same),
    }


AUX_FILES = ("ControlNetHED.pth", "sk_model.pth", "sk_model2.pth", "body_pose_model.pth",
             "hand_pose_model.pth", "facenet.pth", "mlsd_large_512_fp32.pth")


def random_state_dict(model: Any, seed: int) -> dict[str, Any]:
    """Same keys, shapes and dtypes as `model.state_dict()`; values from a seeded generator.

    Weights are uniform in +-1/sqrt(fan_in) (PyTorch's default conv init), batch-norm
    statistics stay neutral (mean 0, variance 1), integer buffers are kept.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif key.endswith("running_mean"):
            out[key] = torch.zeros_like(value)
        elif key.endswith("running_var"):
            out[key] = torch.ones_like(value)
        else:
            fan_in = math.prod(value.shape[1:]) if value.ndim > 1 else value.numel()
            bound = 1.0 / math.sqrt(max(1, fan_in))
            out[key] = (torch.rand(value.shape, generator=gen, dtype=torch.float32) * 2 - 1).mul_(bound).to(value.dtype)
    return out


def write_annotators_dir(folder: str | Path, files: tuple[str, ...] = AUX_FILES, seed: int = 0) -> Path:
    """Write random-weight `files` in lllyasviel/Annotators layout into `folder`."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = _aux_models()
    for k, name in enumerate(files):
        factory, rename = models[name]
        state = random_state_dict(factory(), seed + k)
        torch.save({rename(key): v for key, v in state.items()}, folder / name)
    return folder


def depth_anything_config(size: str = "tiny", seed: int = 0) -> Any:
    """`tiny`: a few thousand parameters, seconds-free. `small`: Depth-Anything-V2-Small's shapes."""
    from transformers import DepthAnythingConfig, Dinov2Config

    if size == "small":
        return DepthAnythingConfig()  # its defaults are the V2-Small architecture
    if size != "tiny":
        raise ValueError(f"size must be 'tiny' or 'small', not {size!r}")
    backbone = Dinov2Config(image_size=518, patch_size=14, hidden_size=32, num_hidden_layers=4,
                            num_attention_heads=2, intermediate_size=64, out_indices=[1, 2, 3, 4],
                            reshape_hidden_states=False, initializer_range=0.1)
    # A wide init keeps the ReLU head's output from collapsing to a constant.
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                               fusion_hidden_size=16, head_hidden_size=8, initializer_range=0.1)


def write_depth_anything_dir(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """A random-weight Depth-Anything-V2 folder in HF layout, with the real preprocessor config."""
    import torch
    from transformers import DepthAnythingForDepthEstimation, DPTImageProcessor

    folder = Path(folder)
    with torch.random.fork_rng():  # transformers initialises from the global RNG
        torch.manual_seed(seed)
        model = DepthAnythingForDepthEstimation(depth_anything_config(size, seed))
    model.save_pretrained(folder)
    DPTImageProcessor(  # as in depth-anything/Depth-Anything-V2-Small-hf
        do_resize=True, size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
        resample=3, do_rescale=True, do_normalize=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder
