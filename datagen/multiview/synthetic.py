"""Demo captures: procedurally textured objects rendered with Mitsuba 3 at known poses.

Each capture is written exactly like an MVImageNet object - `images/000.jpg ...` and a
COLMAP model in `sparse/0/` - so the demo exercises the same reader, sampler and scorers as
real data. The camera walks once around the object like a handheld phone video: azimuth
sweeps ~300 degrees while elevation, distance and roll drift slowly, all from the seed.

Renderer: Mitsuba 3 (`pip install mitsuba==3.9.1`, drjit 1.5.0), CPU `scalar_rgb` variant -
no display, no GPU. It is imported only here; a clear error says how to install it.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from datagen.images import encode_jpeg, upsample_cubic
from datagen.multiview.colmap import (
    Camera,
    ImageRecord,
    SparseModel,
    write_sparse_model,
)
from datagen.multiview.poses import CameraPose
from datagen.portable import portable_cv
from datagen.rng import sample_rng

UP = np.array([0.0, 0.0, 1.0])
POSE_DECIMALS = 9
OBJECTS = ("vase", "blocks", "toy")


def _mitsuba():
    try:
        import mitsuba as mi
    except ImportError as exc:
        raise ImportError("the demo renderer needs Mitsuba 3: pip install mitsuba==3.9.1") from exc
    mi.set_variant("scalar_rgb")
    return mi


# --------------------------------------------------------------------------- textures
def procedural_texture(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """A feature-rich RGB texture: tinted noise, then shapes and glyphs in a random palette."""
    palette = rng.integers(40, 250, size=(6, 3))
    # upsample_cubic, not cv2.resize: OpenCV's float bicubic rounds differently per SIMD level.
    noise = upsample_cubic(rng.random((8, 8, 3)).astype(np.float32), (size, size))
    tex = np.clip(palette[0] * (0.6 + 0.5 * noise), 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(25, 45))):
        colour = tuple(int(c) for c in palette[int(rng.integers(1, 6))])
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(6, size // 8))
        kind = int(rng.integers(3))
        if kind == 0:
            cv2.rectangle(tex, (x, y), (x + r, y + int(rng.integers(4, r + 5))), colour, -1)
        elif kind == 1:
            cv2.circle(tex, (x, y), r // 2 + 2, colour, -1, lineType=cv2.LINE_AA)
        else:
            glyph = chr(int(rng.integers(65, 91)))
            cv2.putText(tex, glyph, (x, y), cv2.FONT_HERSHEY_SIMPLEX, r / 12, colour, 2, cv2.LINE_AA)
    return tex


# --------------------------------------------------------------------------- shapes
# Only Mitsuba's analytic shapes (sphere, cylinder, disk, rectangle): Mitsuba intersects them
# itself, in double precision. Triangle meshes are intersected by Embree, whose kernels are
# chosen by CPUID (SSE, AVX2, AVX-512 use different reciprocal approximations), so a mesh
# renders to slightly different pixels on different CPUs and no environment switch stops it.
def _textured(mi, rng: np.random.Generator) -> dict:
    # Two-sided: the inside of an open vase or cylinder is lit too, not black.
    diffuse = {"type": "diffuse", "reflectance": {"type": "bitmap", "bitmap": mi.Bitmap(procedural_texture(rng))}}
    return {"type": "twosided", "bsdf": diffuse}


_BOX_FACES = (  # (rotation axis, degrees, unit-cube face centre): the rectangle's +z face moved there
    ([1, 0, 0], 0.0, [0, 0, 1]), ([1, 0, 0], 180.0, [0, 0, -1]), ([0, 1, 0], 90.0, [1, 0, 0]),
    ([0, 1, 0], -90.0, [-1, 0, 0]), ([1, 0, 0], -90.0, [0, 1, 0]), ([1, 0, 0], 90.0, [0, -1, 0]),
)  # fmt: skip


def _box(mi, shapes: dict, name: str, to_world, bsdf: dict) -> None:
    """A closed box (the unit cube [-1, 1]^3 under `to_world`) made of six rectangles."""
    T = mi.ScalarTransform4f
    for k, (axis, deg, centre) in enumerate(_BOX_FACES):
        shapes[f"{name}_face{k}"] = {"type": "rectangle", "bsdf": bsdf,
                                     "to_world": to_world @ T().translate(centre).rotate(axis, deg)}  # fmt: skip


def _tube(mi, shapes: dict, name: str, z0: float, z1: float, radius: float, bsdf: dict, *, cap: bool) -> None:
    """An open cylinder about +z from z0 to z1, with a disk closing its top when `cap`."""
    shapes[name] = {"type": "cylinder", "p0": [0, 0, z0], "p1": [0, 0, z1], "radius": radius, "bsdf": bsdf}
    if cap:
        to_world = mi.ScalarTransform4f().translate([0, 0, z1]).scale(radius)  # the unit disk at z = 0
        shapes[f"{name}_cap"] = {"type": "disk", "to_world": to_world, "bsdf": bsdf}


def object_shapes(mi, kind: str, rng: np.random.Generator) -> tuple[dict, float]:
    """Mitsuba shape dicts of one object on a textured ground, and the object's height."""
    T = mi.ScalarTransform4f
    shapes: dict = {}
    if kind == "vase":
        # A round body, a neck and a flared lip, proportions from the seed.
        body = float(rng.uniform(0.35, 0.5))
        neck = float(rng.uniform(0.12, 0.22)) * body / 0.35
        height = float(rng.uniform(1.0, 1.4))
        skin = _textured(mi, rng)
        shapes["vase_body"] = {"type": "sphere", "center": [0, 0, body], "radius": body, "bsdf": skin}
        _tube(mi, shapes, "vase_neck", 1.6 * body, height - 0.08, neck, skin, cap=False)
        _tube(mi, shapes, "vase_lip", height - 0.08, height, neck * 1.35, _textured(mi, rng), cap=False)
    elif kind == "blocks":
        z = 0.0
        for k in range(3):
            s = [float(v) for v in rng.uniform((0.25, 0.25, 0.12), (0.45, 0.45, 0.25))]
            angle = float(rng.uniform(0, 90))
            _box(mi, shapes, f"block{k}", T().translate([0, 0, z + s[2]]).rotate([0, 0, 1], angle).scale(s),
                 _textured(mi, rng))
            z += 2 * s[2]
        height = z
    elif kind == "toy":
        height = 1.15
        shapes["body"] = {"type": "sphere", "center": [0, 0, 0.45], "radius": 0.45, "bsdf": _textured(mi, rng)}
        _tube(mi, shapes, "hat", 0.8, 1.15, 0.25, _textured(mi, rng), cap=True)
        turn = float(rng.uniform(0, 90))
        _box(mi, shapes, "box", T().translate([0.55, -0.3, 0.2]).rotate([0, 0, 1], turn).scale(0.2), _textured(mi, rng))
    else:
        raise ValueError(f"unknown demo object {kind!r} (have {OBJECTS})")
    shapes["ground"] = {"type": "rectangle", "to_world": T().scale([3.0, 3.0, 1.0]), "bsdf": _textured(mi, rng)}
    return shapes, height


# --------------------------------------------------------------------------- cameras
def orbit_poses(rng: np.random.Generator, n_views: int, target: np.ndarray) -> list[CameraPose]:
    """A handheld-like loop: azimuth sweeps ~300 deg; elevation, distance, roll drift smoothly."""
    t = np.linspace(0.0, 1.0, n_views)
    az0, sweep = rng.uniform(0, 360), rng.uniform(260, 320) * rng.choice([-1, 1])
    ph = rng.uniform(0, 2 * np.pi, 3)
    poses = []
    for ti in t:
        az = np.radians(az0 + sweep * ti)
        el = np.radians(25 + 10 * np.sin(2 * np.pi * ti + ph[0]))
        dist = 3.4 + 0.4 * np.sin(2 * np.pi * ti + ph[1])
        roll = 4.0 * np.sin(2 * np.pi * ti + ph[2])
        eye = target + dist * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        poses.append(_quantized(CameraPose.look_at(eye, target, UP, roll_deg=roll)))
    return poses


def _quantized(pose: CameraPose) -> CameraPose:
    """The pose rounded to 9 decimals: NumPy's CPU-specific trigonometry and BLAS noise (~1e-16)
    stops here, so the renderer and the COLMAP writer (exact scalar maths) see the same numbers
    on every CPU."""
    return CameraPose(np.round(pose.R, POSE_DECIMALS) + 0.0, np.round(pose.t, POSE_DECIMALS) + 0.0)


def _to_world(mi, pose: CameraPose):
    # Mitsuba's camera frame is x left, y up, z forward; OpenCV's is x right, y down, z forward.
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = -pose.right, -pose.down, pose.forward, pose.center
    return mi.ScalarTransform4f(m.tolist())


def build_scene(mi, shapes: dict):
    """The object, its ground, a sky and a sun; cameras are passed per render."""
    return mi.load_dict(
        {
            "type": "scene",
            "integrator": {"type": "direct"},
            "sky": {"type": "constant", "radiance": {"type": "rgb", "value": 0.6}},
            "sun": {"type": "directional", "direction": [-0.4, 0.3, -1.0], "irradiance": {"type": "rgb", "value": 2.0}},
            **shapes,
        }
    )


def render_view(mi, scene, pose: CameraPose, width: int, height: int, fov_x_deg: float, spp: int, seed: int) -> np.ndarray:
    sensor = mi.load_dict(
        {
            "type": "perspective",
            "fov": fov_x_deg,
            "fov_axis": "x",
            "to_world": _to_world(mi, pose),
            # A box filter keeps every sample in its own pixel: with a wider filter, image blocks
            # rendered on different threads overlap and add up in whatever order they finish.
            "film": {"type": "hdrfilm", "width": width, "height": height, "rfilter": {"type": "box"}},
            "sampler": {"type": "independent", "sample_count": spp},
        }
    )
    img = mi.render(scene, sensor=sensor, spp=spp, seed=seed)
    bmp = mi.Bitmap(img).convert(mi.Bitmap.PixelFormat.RGB, mi.Struct.Type.UInt8, srgb_gamma=True)
    return np.array(bmp)


# --------------------------------------------------------------------------- captures
def make_demo_captures(
    out_dir: str | Path,
    seed: int,
    *,
    objects: tuple[str, ...] = OBJECTS,
    n_views: int = 24,
    width: int = 256,
    height: int = 192,
    fov_x_deg: float = 50.0,
    spp: int = 12,
    pose_format: str = "bin",
) -> list[Path]:
    """Render one MVImageNet-layout capture per object under `out_dir/demo/<kind>_<k>`.

    Output bytes depend only on (seed, arguments), not on the CPU: each object draws from its
    own stream, textures and poses are computed exactly, shapes avoid Embree's triangle kernels.
    """
    with portable_cv():
        return _make_demo_captures(Path(out_dir), seed, objects, n_views, width, height, fov_x_deg, spp, pose_format)


def _make_demo_captures(out_dir, seed, objects, n_views, width, height, fov_x_deg, spp, pose_format) -> list[Path]:
    mi = _mitsuba()
    out = []
    for k, kind in enumerate(objects):
        rng = sample_rng(seed, k)
        root = Path(out_dir) / "demo" / f"{kind}_{k:02d}"
        (root / "images").mkdir(parents=True, exist_ok=True)
        shapes, height_obj = object_shapes(mi, kind, rng)
        scene = build_scene(mi, shapes)
        target = np.array([0.0, 0.0, 0.5 * height_obj])
        poses = orbit_poses(rng, n_views, target)
        f = width / 2 / math.tan(math.radians(fov_x_deg / 2))
        camera = Camera(1, "PINHOLE", width, height, (f, f, width / 2, height / 2))
        records = {}
        for i, pose in enumerate(poses):
            name = f"{i:03d}.jpg"
            pixels = render_view(mi, scene, pose, width, height, fov_x_deg, spp, seed=int(rng.integers(2**31)))
            (root / "images" / name).write_bytes(encode_jpeg(pixels, quality=92))
            records[i + 1] = ImageRecord(i + 1, name, 1, pose)
        write_sparse_model(root / "sparse" / "0", SparseModel({1: camera}, records), pose_format)
        out.append(root)
    return out
