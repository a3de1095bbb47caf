"""Multi-view samples from posed captures (MVImageNet/COLMAP and CO3D layouts).

`multiview_samples(capture_dir, config, rng)` is the unit of work: one capture folder in,
samples (reference view -> 1-4 further views, camera motion in words) and rejects out.
`product.PRODUCT` declares the dataset product (config, plan, per-item function).
`synthetic.make_demo_captures` renders demo captures in the same layout (needs Mitsuba 3).
"""

from datagen.multiview.capture import Capture, View, read_capture
from datagen.multiview.motion import CameraMotion, motion_words, relative_motion
from datagen.multiview.poses import CameraPose
from datagen.multiview.config import MultiviewConfig
from datagen.multiview.samples import multiview_samples

__all__ = [
    "CameraMotion",
    "CameraPose",
    "Capture",
    "MultiviewConfig",
    "View",
    "motion_words",
    "multiview_samples",
    "read_capture",
    "relative_motion",
]
