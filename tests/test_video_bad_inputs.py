"""Bad videos are rejected with a reason (or handled), the run goes on, nothing leaks."""

from __future__ import annotations

import os
import resource
import tracemalloc

import numpy as np
import pytest

from datagen.rng import sample_rng
from datagen.schema import rejects_table
from datagen.video import (
    Limits,
    VideoPairsConfig,
    VideoRejected,
    process_video,
    score_video,
)
from datagen.video.process import TASK_PAIR

try:
    from tests import videos as V
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import videos as V


def pairs_config(**changes) -> VideoPairsConfig:
    """The product config; `videos` (the folder the product lists) is not read by process_video."""
    return VideoPairsConfig(videos="-", **changes)

# name -> (writer, expected reason, stage)
BAD = {
    "zero_byte": (lambda d: V.zero_byte(d / "zero.mp4"), "empty_file", "source"),
    "text_file": (lambda d: V.not_a_video(d / "notes.mp4"), "not_a_video", "source"),
    "truncated_index": (lambda d: V.truncated(d / "cut.mp4"), "corrupt_video", "source"),
    "truncated_data": (lambda d: V.truncated(d / "cut_fs.mp4", keep=0.6, faststart=True), "truncated", "decode"),
    "audio_only": (lambda d: V.audio_only(d / "voice.m4a"), "no_video_stream", "source"),
    "one_frame": (lambda d: V.one_frame(d / "still.mp4"), "too_few_frames", "decode"),
    "huge_header": (lambda d: V.huge_header(d / "bomb.y4m"), "too_large", "source"),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    return {name: (writer(d), reason, stage) for name, (writer, reason, stage) in BAD.items()}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gives_one_reject_with_a_reason(bad_files, name):
    path, reason, stage = bad_files[name]
    samples, rejects = process_video(path, pairs_config(), sample_rng(0, 0))
    assert samples == []
    assert len(rejects) == 1, [r.reason for r in rejects]
    r = rejects[0]
    assert (r.reason, r.stage, r.task) == (reason, stage, TASK_PAIR)
    assert r.source == str(path) and r.detail
    rejects_table(rejects)  # the flow can write it as it is
    with pytest.raises(VideoRejected) as err:
        score_video(path)
    assert err.value.reason == reason


def test_a_run_over_good_and_bad_files_accounts_for_every_input(bad_files, tmp_path):
    good, _ = V.shift_ladder(tmp_path / "good.mp4", (320, 180), shifts=[6.0, 9.0, 12.0, 15.0, 18.0])
    paths = [p for p, _, _ in bad_files.values()] + [good]
    kept, rejected = {}, {}
    for i, p in enumerate(paths):
        s, r = process_video(p, pairs_config(), sample_rng(1, i))
        kept[p], rejected[p] = len(s), len(r)
    assert all(kept[p] + rejected[p] >= 1 for p in paths)  # nothing silently lost
    assert kept[good] >= 1


def test_too_small_and_too_long_are_refused_from_the_header(tmp_path):
    path, _ = V.shift_ladder(tmp_path / "small.mp4", (160, 90), shifts=[5.0, 5.0])
    _, rejects = process_video(path, pairs_config(), sample_rng(0, 0))
    assert [r.reason for r in rejects] == ["too_small"]
    cfg = pairs_config(limits=Limits(min_side=64, max_duration_s=1.0))
    _, rejects = process_video(path, cfg, sample_rng(0, 0))
    assert [r.reason for r in rejects] == ["too_long"]


def test_huge_header_is_refused_without_decoding(bad_files):
    path, _, _ = bad_files["huge_header"]
    tracemalloc.start()
    process_video(path, pairs_config(), sample_rng(0, 0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5_000_000  # an 8192x8192 RGB frame alone would be 200 MB


def test_rotated_video_comes_out_upright(tmp_path):
    path, upright = V.rotated(tmp_path / "phone.mp4", 90)
    samples, rejects = process_video(path, pairs_config(gap_range_s=(0.5, 0.5)), sample_rng(0, 0))
    assert samples, [r.reason for r in rejects]
    first = samples[0]
    assert first.meta["source"]["rotation"] == 90
    a = first.inputs[0].pixels
    assert a.shape[0] > a.shape[1]  # portrait, as shown by a player
    # The upright frame a player shows at t_a (the clip pans 6 px per frame at 25 fps).
    k = int(round(first.meta["t_a"] * 25))
    shown = V.S.render(V.canvas(), V.S.Pose(1024.0 + 6 * k, 768.0), (180, 320)) if k else upright
    assert np.abs(a.astype(int) - shown).mean() < 8.0


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_file_handle_or_memory_leak(bad_files, tmp_path):
    good, _ = V.shift_ladder(tmp_path / "good.mp4", (320, 180), shifts=[6.0, 9.0, 12.0])
    paths = [p for p, _, _ in bad_files.values()] + [good]
    cfg = pairs_config()

    def run_all():
        for i, p in enumerate(paths):
            process_video(p, cfg, sample_rng(2, i))

    run_all()  # warm caches, codecs, thread pools
    fds = _open_fds()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, high-water mark
    for _ in range(3):
        run_all()
    assert _open_fds() == fds
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 50_000
