"""controlnet_aux annotators from a local lllyasviel/Annotators folder: HED, lineart
(fine/coarse), OpenPose (body, + hands/face when asked) and any other detector by name.

controlnet_aux is imported in `setup()` only: its import takes seconds, sets
KMP_DUPLICATE_LIB_OK and registers timm models. Every checkpoint goes through
`weights_only=True` loading (its own `torch.load` calls are wrapped), since weight files are
untrusted. HED and lineart run true batched forwards, grouped by working size, reproducing
controlnet_aux's per-image arithmetic; OpenPose and the generic detectors are per image
(their post-processing is per image numpy). Maps come back at the input's HxW.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable

import cv2
import numpy as np

from datagen.conditions import weights
from datagen.conditions.base import (
    Annotator,
    default_micro_batch,
    package_version,
    prepare_image,
    register,
    resize_to,
)


def import_controlnet_aux() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mediapipe-missing, timm deprecation and registry noise
        import controlnet_aux

    return controlnet_aux


class ControlNetAuxAnnotator(Annotator):
    """Shared plumbing: weights folder, device, working resolution, micro-batching."""

    needs_weights = True
    weights_layout = weights.ANNOTATORS_LAYOUT
    weights_hint = weights.ANNOTATORS_HINT
    code_version = "1"

    def __init__(self, weights_dir: Any = None, device: str = "cpu", detect_resolution: int = 512,
                 micro_batch: int | None = None):
        super().__init__()
        self.weights_dir, self.device = weights_dir, device
        self.detect_resolution, self.micro_batch = int(detect_resolution), default_micro_batch(device, micro_batch)

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"{self.code_version}+controlnet_aux-{package_version('controlnet_aux')}"

    def options(self) -> dict[str, Any]:
        return {"detect_resolution": self.detect_resolution}

    def _working_image(self, rgb: np.ndarray) -> np.ndarray:
        """controlnet_aux's own resize: short side to the resolution, both sides to x64."""
        from controlnet_aux.util import resize_image

        return resize_image(rgb, self.detect_resolution)

    def _batched(self, images: list[np.ndarray], forward: Callable[[Any], np.ndarray]) -> list[np.ndarray]:
        """forward(float tensor Bx3xhxw, 0..255) -> B working-size arrays, on groups of one size."""
        import torch

        work = [self._working_image(img) for img in images]
        out: list[np.ndarray | None] = [None] * len(work)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, w in enumerate(work):
            groups.setdefault(w.shape[:2], []).append(i)
        with torch.inference_mode():
            for idx in groups.values():
                for start in range(0, len(idx), self.micro_batch):
                    chunk = idx[start : start + self.micro_batch]
                    x = torch.from_numpy(np.stack([work[i] for i in chunk])).to(self.device).permute(0, 3, 1, 2).float()
                    for i, res in zip(chunk, forward(x)):
                        out[i] = res
        return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- HED
class HEDAnnotator(ControlNetAuxAnnotator):
    """Soft edges (ControlNet 1.1 "softedge"), or binary scribbles with `scribble=True`."""

    def __init__(self, weights_dir: Any = None, scribble: bool = False, safe: bool = False, **kw: Any):
        super().__init__(weights_dir, **kw)
        self.scribble, self.safe = bool(scribble), bool(safe)
        self.name = "hed_scribble" if self.scribble else "hed"
        self.kind = "scribble" if self.scribble else "softedge"

    def weight_files(self) -> list[str | tuple[str, ...]]:
        return ["ControlNetHED.pth"]

    def options(self) -> dict[str, Any]:
        return {**super().options(), "scribble": self.scribble, "safe": self.safe}

    def _load(self) -> None:
        import_controlnet_aux()
        from controlnet_aux.hed import ControlNetHED_Apache2

        net = ControlNetHED_Apache2()
        net.load_state_dict(weights.load_state_dict(self.check_weights()["ControlNetHED.pth"]))
        self.net = net.float().eval().to(self.device)

    def _edges(self, x: Any) -> list[np.ndarray]:
        from controlnet_aux.util import nms, safe_step

        h, w = x.shape[2:]
        projections = [p.detach().cpu().numpy().astype(np.float32)[:, 0] for p in self.net(x)]
        maps = []
        for b in range(x.shape[0]):
            stack = np.stack([cv2.resize(p[b], (w, h), interpolation=cv2.INTER_LINEAR) for p in projections], axis=2)
            edge = 1 / (1 + np.exp(-np.mean(stack, axis=2).astype(np.float64)))
            if self.safe:
                edge = safe_step(edge)
            edge = (edge * 255.0).clip(0, 255).astype(np.uint8)
            if self.scribble:
                edge = nms(edge, 127, 3.0)
                edge = cv2.GaussianBlur(edge, (0, 0), 3.0)
                edge = np.where(edge > 4, 255, 0).astype(np.uint8)
            maps.append(edge)
        return maps

    def _annotate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        maps = [resize_to(m, *img.shape[:2]) for m, img in zip(self._batched(images, self._edges), images)]
        if self.scribble:  # resampling blurs strokes; a scribble stays black or white
            maps = [np.where(m > 127, 255, 0).astype(np.uint8) for m in maps]
        return maps


# --------------------------------------------------------------------------- lineart
class LineartAnnotator(ControlNetAuxAnnotator):
    kind = "lineart"

    def __init__(self, weights_dir: Any = None, coarse: bool = False, **kw: Any):
        super().__init__(weights_dir, **kw)
        self.coarse = bool(coarse)
        self.name = "lineart_coarse" if self.coarse else "lineart"

    def weight_files(self) -> list[str | tuple[str, ...]]:
        return ["sk_model2.pth" if self.coarse else "sk_model.pth"]

    def options(self) -> dict[str, Any]:
        return {**super().options(), "coarse": self.coarse}

    def _load(self) -> None:
        import_controlnet_aux()
        from controlnet_aux.lineart import Generator

        (path,) = self.check_weights().values()
        net = Generator(3, 1, 3)
        net.load_state_dict(weights.load_state_dict(path))
        self.net = net.float().eval().to(self.device)

    def _lines(self, x: Any) -> list[np.ndarray]:
        line = self.net(x / 255.0)[:, 0].cpu().numpy()  # B,h,w in 0..1, black strokes on white
        return list(255 - (line * 255.0).clip(0, 255).astype(np.uint8))

    def _annotate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        maps = self._batched(images, self._lines)
        return [resize_to(m, *img.shape[:2]) for m, img in zip(maps, images)]


# --------------------------------------------------------------------------- OpenPose
def draw_pose_map(poses: list[Any], height: int, width: int, hands: bool = False, face: bool = False) -> np.ndarray:
    """controlnet_aux's OpenPose drawing of `PoseResult`s (normalised keypoints) on black."""
    import_controlnet_aux()
    from controlnet_aux.open_pose import draw_poses

    return draw_poses(poses, height, width, draw_body=True, draw_hand=hands, draw_face=face)


class OpenPoseAnnotator(ControlNetAuxAnnotator):
    kind = "pose"

    def __init__(self, weights_dir: Any = None, hands: bool = False, face: bool = False, **kw: Any):
        super().__init__(weights_dir, **kw)
        self.hands, self.face = bool(hands), bool(face)
        self.name = "openpose" + ("_full" if hands and face else "_hand" if hands else "_face" if face else "")

    def weight_files(self) -> list[str | tuple[str, ...]]:
        return ["body_pose_model.pth"] + ["hand_pose_model.pth"] * self.hands + ["facenet.pth"] * self.face

    def options(self) -> dict[str, Any]:
        return {**super().options(), "hands": self.hands, "face": self.face}

    def _load(self) -> None:
        aux = import_controlnet_aux()
        from controlnet_aux.open_pose import Body, Face, Hand

        paths = self.check_weights()
        with weights.weights_only_torch_load():  # Body/Hand/Face call torch.load themselves
            body = Body(str(paths["body_pose_model.pth"]))
            hand = Hand(str(paths["hand_pose_model.pth"])) if self.hands else None
            face = Face(str(paths["facenet.pth"])) if self.face else None
        self.detector = aux.OpenposeDetector(body, hand, face)
        for part in filter(None, (body, hand, face)):
            part.to(self.device)

    def detect(self, images: list[np.ndarray]) -> list[list[Any]]:
        """Per RGB image, the people found (controlnet_aux PoseResult, keypoints in 0..1)."""
        self.setup()
        return [self._detect_working(self._working_image(prepare_image(img))) for img in images]

    def _detect_working(self, work: np.ndarray) -> list[Any]:
        import torch

        with torch.inference_mode():
            return self.detector.detect_poses(work, self.hands, self.face)

    def _annotate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        maps = []
        for img in images:
            work = self._working_image(img)
            poses = self._detect_working(work)
            # Drawn at the working size, where ControlNet's stick widths were chosen, then scaled.
            canvas = draw_pose_map(poses, work.shape[0], work.shape[1], self.hands, self.face)
            maps.append(resize_to(canvas, *img.shape[:2]))
        return maps


# --------------------------------------------------------------------------- any other detector
# name -> (controlnet_aux class, files its from_pretrained reads from a local folder, kind).
DETECTORS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "mlsd": ("MLSDdetector", ("mlsd_large_512_fp32.pth",), "mlsd"),
    "pidinet": ("PidiNetDetector", ("table5_pidinet.pth",), "softedge"),
    "lineart_anime": ("LineartAnimeDetector", ("netG.pth",), "lineart"),
    "midas": ("MidasDetector", ("dpt_hybrid-midas-501f0c75.pt",), "depth"),
}
# Detectors that cannot meet this project's rules, and why.
REFUSED = {
    "ContentShuffleDetector": "draws from the global numpy RNG, so its maps are not reproducible",
    "SamDetector": "colours masks from the global numpy RNG, so its maps are not reproducible",
    "MediapipeFaceDetector": "needs mediapipe, which must not be installed (it breaks the import)",
    "DWposeDetector": "needs mmpose/mmdet configs and checkpoints outside the Annotators layout",
}


class GenericAuxAnnotator(ControlNetAuxAnnotator):
    """`detector` is a DETECTORS name or a controlnet_aux class name (then give `files`)."""

    def __init__(self, detector: str, weights_dir: Any = None, files: tuple[str, ...] | None = None,
                 kind: str | None = None, call_options: dict[str, Any] | None = None,
                 load_options: dict[str, Any] | None = None, **kw: Any):
        super().__init__(weights_dir, **kw)
        cls_name, default_files, default_kind = DETECTORS.get(detector, (detector, (), ""))
        if cls_name in REFUSED:
            raise ValueError(f"controlnet_aux {cls_name} is not supported: {REFUSED[cls_name]}")
        if not (files or default_files):
            raise ValueError(f"say which weight files {detector!r} reads (files=...); known: {sorted(DETECTORS)}")
        self.detector_class, self.files, self.name = cls_name, tuple(files or default_files), detector
        self.kind = kind or default_kind or detector.lower()
        self.call_options, self.load_options = dict(call_options or {}), dict(load_options or {})

    def weight_files(self) -> list[str | tuple[str, ...]]:
        return list(self.files)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "detector": self.detector_class, **self.call_options}

    def _load(self) -> None:
        aux = import_controlnet_aux()
        cls = getattr(aux, self.detector_class, None)
        if cls is None or not hasattr(cls, "from_pretrained"):
            raise ValueError(f"controlnet_aux {package_version('controlnet_aux')} has no {self.detector_class}")
        with weights.weights_only_torch_load():
            self.detector = cls.from_pretrained(str(self.weights_folder()), **self.load_options)
        if hasattr(self.detector, "to"):
            self.detector.to(self.device)
        # Detectors differ in which resolution arguments they take; pass only what they accept,
        # so a signature mismatch cannot turn every image into a reject.
        params = inspect.signature(self.detector.__call__).parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        res = self.detect_resolution
        wanted = {"detect_resolution": res, "image_resolution": res, "output_type": "np"}
        self._call_kwargs = {k: v for k, v in wanted.items() if accepts_any or k in params}
        self._call_kwargs.update(self.call_options)

    def _annotate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        maps = []
        with torch.inference_mode():
            for img in images:
                m = np.asarray(self.detector(img, **self._call_kwargs))
                if m.ndim == 3 and (m == m[:, :, :1]).all():
                    m = m[:, :, 0]  # grey maps are stored single-channel: a third of the PNG
                maps.append(resize_to(np.ascontiguousarray(m.astype(np.uint8)), *img.shape[:2]))
        return maps


register("hed", HEDAnnotator)
register("hed_scribble", lambda **kw: HEDAnnotator(scribble=True, **kw))
register("lineart", LineartAnnotator)
register("lineart_coarse", lambda **kw: LineartAnnotator(coarse=True, **kw))
register("openpose", OpenPoseAnnotator)
register("openpose_hand", lambda **kw: OpenPoseAnnotator(hands=True, **kw))
register("openpose_face", lambda **kw: OpenPoseAnnotator(face=True, **kw))
register("openpose_full", lambda **kw: OpenPoseAnnotator(hands=True, face=True, **kw))
for _name in DETECTORS:
    register(_name, lambda _detector=_name, **kw: GenericAuxAnnotator(_detector, **kw))
register("controlnet_aux", GenericAuxAnnotator)
