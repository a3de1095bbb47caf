"""Decoding sampled frames: the shortcuts change no pixel, times are real, frames upright."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage

from datagen.video import synthetic as S
from datagen.video.decode import read_frames, sample_times
from datagen.video.probe import Limits, probe

try:
    from tests import videos as V
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import videos as V


def test_sample_times():
    assert sample_times(2.0, 2.0) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert sample_times(0.3, 2.0) == [0.0]
    with pytest.raises(ValueError):
        sample_times(1.0, 0.0)


@pytest.fixture(scope="module")
def short_gop_clip(tmp_path_factory) -> Path:
    """6 s at 25 fps with a keyframe every 0.4 s and B-frames: seeking and skipping both apply."""
    path = tmp_path_factory.mktemp("gop") / "gop.mp4"
    frames = [S.render(V.canvas(), S.Pose(900.0 + 4 * k, 768.0 + k), (320, 180)) for k in range(150)]
    return S.write_video(path, frames, 25, "libx264", gop=10)


def test_skipping_and_seeking_change_no_pixel(short_gop_clip):
    info = probe(short_gop_clip)
    times = [0.0, 0.52, 2.0, 2.1, 4.96, 5.5]
    fast_stats, slow_stats = {}, {}
    fast = list(read_frames(info, times, stats=fast_stats))
    slow = list(read_frames(info, times, skip_nonref=False, seek=False, stats=slow_stats))
    assert [f.time for f in fast] == [f.time for f in slow]
    for a, b in zip(fast, slow):
        assert np.array_equal(a.pixels, b.pixels)
    # Each frame is the first one shown at or after its time (25 fps grid, half-frame slack).
    assert [round(f.time, 2) for f in fast] == [0.0, 0.52, 2.0, 2.08, 4.96, 5.48]
    assert fast_stats["seeks"] >= 2 and slow_stats["seeks"] == 0
    assert fast_stats["decoded"] < slow_stats["decoded"] / 2


def test_nonref_skipping_on_a_long_gop(tmp_path):
    path = S.write_video(tmp_path / "long.mp4", [S.render(V.canvas(), S.Pose(900.0 + 3 * k, 768.0), (320, 180))
                                                 for k in range(100)], 25, "libx264")  # fmt: skip
    info = probe(path)
    stats = {}
    frames = list(read_frames(info, sample_times(info.duration, 2.0), stats=stats))
    assert len(frames) == 8 and stats["seeks"] == 0  # one GOP: nothing to seek to
    assert stats["decoded"] < 0.75 * stats["packets"]  # B-frames far from samples never decoded
    full = list(read_frames(info, sample_times(info.duration, 2.0), skip_nonref=False))
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(frames, full))


def test_scaled_grey_output(short_gop_clip):
    info = probe(short_gop_clip)
    frame = next(read_frames(info, [1.0], size=(160, 90), grey=True))
    assert frame.pixels.shape == (90, 160) and frame.pixels.dtype == np.uint8


def test_variable_frame_rate_uses_real_times(tmp_path):
    path, times, speed = V.variable_rate(tmp_path / "vfr.mp4")
    info = probe(path)
    frames = list(read_frames(info, sample_times(info.duration, 2.0)))
    real = np.asarray(times)
    for f in frames:
        # A real frame time, and the first at or after the target (minus half a frame).
        assert np.min(np.abs(real - f.time)) < 1e-3
    gaps = np.diff([f.time for f in frames])
    assert gaps.min() > 0.3 and gaps.max() < 0.75  # not evenly spaced, but near 0.5 s


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_display_matrix_gives_upright_frames(tmp_path, rotation):
    path, upright = V.rotated(tmp_path / f"rot{rotation}.mp4", rotation)
    info = probe(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == (upright.shape[1], upright.shape[0])
    frame = next(read_frames(info, [0.0]))
    assert frame.pixels.shape == upright.shape
    assert np.abs(frame.pixels.astype(int) - upright).mean() < 6.0  # codec loss only
    # The wrong turn would be far off: content is not symmetric.
    wrong = np.rot90(frame.pixels, 2)  # same shape as upright for every rotation
    assert np.abs(wrong.astype(int) - upright).mean() > 20.0


def test_bundled_gif_is_read_directly():
    gif = Path(skimage.__file__).parent / "data" / "no_time_for_that_tiny.gif"
    info = probe(gif, Limits(min_side=8))
    frames = list(read_frames(info, sample_times(info.duration, 4.0)))
    assert len(frames) >= 2
    assert frames[0].pixels.shape == (info.height, info.width, 3)
    assert sorted(f.time for f in frames) == [f.time for f in frames]
