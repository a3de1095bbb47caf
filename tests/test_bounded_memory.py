"""Memory bounded by design: a long storyboard video, a strobe (a cut at every sampled frame)
and the same strobe through video pairs hold a bounded number of frames, not the video.

Peak memory is measured as the peak RSS of a fresh child process around the one item call
(the kernel's high-water mark, reset just before it), so frames held in PyAV's buffers count
too; the bound is compared with what holding every sampled frame would cost."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datagen.video.keyframes import MAX_SHOTS, frames_with_shots
from datagen.video.probe import Limits
from tests import videos

ROOT = Path(__file__).resolve().parents[1]
SIZE = (384, 288)  # stored as is (below both products' max sides)
FRAME_BYTES = SIZE[0] * SIZE[1] * 3
SAMPLED = 180  # frames sampled (2 fps): holding them all would cost SAMPLED * FRAME_BYTES = 60 MB

CHILD = r"""
import json, sys
from pathlib import Path
from datagen.product import Item
from datagen.rng import sample_rng
import datagen.storyboard.keyframes, datagen.video.keyframes, datagen.video.probe  # imported by the item call

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

kind, warm_up, video = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "storyboard":
    from datagen.storyboard.config import StoryboardConfig
    from datagen.storyboard.product import StoryboardItems
    run = StoryboardItems(StoryboardConfig(videos=str(Path(video).parent), faces=False))
    call = lambda v: run(Item(0, source=v, data={"video_id": Path(v).name}, input="file", path=v), sample_rng(0, 0))
else:
    from datagen.video.config import VideoPairsConfig
    from datagen.video.process import process_video
    cfg = VideoPairsConfig(videos=str(Path(video).parent), max_pairs_per_video=int(sys.argv[4]))
    call = lambda v: [x for part in process_video(v, cfg, sample_rng(0, 0)) for x in part]
call(warm_up)  # one-time costs (codec and optical-flow set-up, thread pools) are not the video's
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak RSS to the current RSS
before = kib("VmRSS:")
out = call(video)
print(json.dumps({"before": before, "peak": kib("VmHWM:"),
                  "out": [getattr(o, "reason", None) or getattr(o, "task", "?") for o in out]}))
"""


def _peak(kind: str, videos: dict[str, Path], name: str, *args: str) -> tuple[int, list[str]]:
    """RSS growth of one item call on `videos[name]`, after a warm-up call on a short clip."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(videos["warm_up"]), str(videos[name]), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return got["peak"] - got["before"], got["out"]


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    return {
        "warm_up": videos.many_shots(d / "short.mp4", 3, 3, SIZE),
        "shots": videos.many_shots(d / "edit.mp4", SAMPLED // 3, 3, SIZE),  # 60 shots of 1.5 s: a 90 s edit
        "strobe": videos.strobe(d / "strobe.mp4", SAMPLED, SIZE),  # 180 shots of one frame
    }


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
@pytest.mark.parametrize("name", [pytest.param("shots", marks=pytest.mark.slow), "strobe"])
def test_a_storyboard_of_a_long_video_holds_keyframes_not_the_video(long_videos, name):
    grew, out = _peak("storyboard", long_videos, name)
    assert len(out) == 1  # one storyboard or one reject: the video is accounted for
    everything = SAMPLED * FRAME_BYTES
    bound = (MAX_SHOTS + 8) * FRAME_BYTES + (16 << 20)  # the kept keyframes + decoder and working buffers
    print(f"{name}: grew {grew / 2**20:.1f} MiB; bound {bound / 2**20:.1f}; all frames {everything / 2**20:.1f}")
    assert grew < bound < everything * 0.6, (grew, bound, everything)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
def test_video_pairs_cap_cut_transitions_before_making_them(long_videos):
    cap = 12
    grew, out = _peak("pairs", long_videos, "strobe", str(cap))
    kept = [o for o in out if o.startswith("video.")]
    assert 0 < len(kept) <= cap  # 179 cuts made 179 transitions before: the cap was checked after them
    print(f"pairs: grew {grew / 2**20:.1f} MiB for {len(kept)} pairs")
    assert grew < 2 * cap * FRAME_BYTES + (16 << 20) < SAMPLED * FRAME_BYTES * 0.6, grew


def test_keyframes_keep_the_sharpest_frame_of_every_shot_and_thin_evenly(tmp_path):
    """The stream keeps what the storyboard's rule picks from all frames, and past the cap an
    even spread of shots over the whole video (small frames: this checks logic, not memory)."""
    size, limits = (96, 64), Limits(min_side=16)
    clip = videos.many_shots(tmp_path / "edit.mp4", 12, 3, size)
    seen: list[float] = []

    def score(px: np.ndarray) -> float:
        seen.append(float(np.std(px)))
        return seen[-1]

    all_shots = frames_with_shots(clip, fps=2.0, max_side=None, limits=limits, score=score)
    assert (all_shots.shots, all_shots.sampled, all_shots.stride) == (12, 36, 1)
    assert all_shots.shot_ids == list(range(12))
    for k, t in enumerate(all_shots.times):  # shot k is frames 3k..3k+2; the kept one scores best (first on ties)
        best = int(np.argmax(seen[3 * k: 3 * k + 3]))
        assert t == pytest.approx((3 * k + best) / 2.0, abs=0.01)

    thinned = frames_with_shots(clip, fps=2.0, max_side=None, limits=limits, max_shots=5, score=score)
    assert thinned.shots == 12 and thinned.stride == 4 and thinned.shot_ids == [0, 4, 8]
    assert all(np.array_equal(thinned.frames[i], all_shots.frames[k]) for i, k in enumerate(thinned.shot_ids))
    strobe = frames_with_shots(videos.strobe(tmp_path / "strobe.mp4", 40, size), fps=2.0, max_side=None,
                               limits=limits, max_shots=8)
    assert strobe.shots == 40 and len(strobe.frames) <= 8 and strobe.shot_ids[0] == 0 and strobe.shot_ids[-1] >= 32


def test_pair_rejects_are_capped_and_counted(tmp_path, monkeypatch):
    """A video whose every pair is refused (blurred throughout) keeps its first rejects and
    counts the rest in one row, instead of holding one row per pair of a 4-hour file."""
    import datagen.video.process as process
    from datagen.rng import sample_rng
    from datagen.video.config import VideoPairsConfig

    clip = videos.blurry(tmp_path / "blurry.mp4", seconds=6.0)
    cfg = VideoPairsConfig(videos=str(tmp_path), sample_fps=4.0, anchor_every_s=0.25)
    samples, all_rejects = process.process_video(clip, cfg, sample_rng(0, 0))
    assert samples == [] and len(all_rejects) > 4 and {r.reason for r in all_rejects} == {"blurry"}
    monkeypatch.setattr(process, "MAX_PAIR_REJECTS", 3)
    _, capped = process.process_video(clip, cfg, sample_rng(0, 0))
    assert [r.reason for r in capped] == ["blurry"] * 3 + ["rejects_capped"]
    assert capped[:3] == all_rejects[:3] and capped[-1].meta["unlisted"] == len(all_rejects) - 3
