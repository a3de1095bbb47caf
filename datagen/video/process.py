"""One video in, frame-pair samples and rejects out: the pure function the flow calls.

    samples, rejects = process_video(path, config, rng)

The product's item function (`datagen/video/product.py`) calls it with the harness's local
copy of the item's video and the item's URI as `source`, the name records carry.

Streaming, in one decode pass: sampled frames (at `sample_fps`, stored size) arrive in
time order; each is measured once (working-size grey, colour histogram, sharpness,
exposure); consecutive frames are compared for cuts; the pair planner completes pairs
within the current shot; cut, stitched and re-cut cross-transition pairs are cut from the
same stream (re-cuts at the end of the video, from a few frames held for them). Memory
holds the open anchors and the kept pairs, never the whole video: at most
`max_pairs_per_video` samples of every kind (within-shot, cut, stitched and re-cut pairs
count alike, checked before a pair is made), so the peak is about 2 x max_pairs_per_video frames
at `max_store_side` (200 pairs of 1024x576: ~0.7 GB at worst, frames shared between pairs
counted once), whatever the video's length or number of cuts.

Every input is accounted for: a video either yields samples and/or pair-level rejects, or
exactly one video-level reject (unreadable, truncated, too small, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen.portable import portable_cv
from datagen.schema import Picture, Reject, Sample, make_id, quantize
from datagen.video import captions
from datagen.video.config import VideoPairsConfig
from datagen.video.contrast import is_flat
from datagen.video.decode import prefetched, read_frames, sample_times
from datagen.video.filters import (
    FrameQuality,
    frame_problem,
    measure_quality,
    motion_problem,
    motion_weight,
)
from datagen.video.optical_flow import raft_weights_file
from datagen.video.motion import MotionEstimate, estimate_motion, to_work, work_size
from datagen.video.pairs import PairPlanner
from datagen.video.phash import PairIndex, phash
from datagen.video.probe import VideoInfo, VideoRejected, content_hash, probe
from datagen.video.recuts import RecutPlanner
from datagen.video.shots import colour_histogram, hist_distance, judge_cut
from datagen.video.transitions import plan_stitches, recrop

GENERATOR = "datagen.video@1"
TASK_PAIR = "video.pair"
TASK_TRANSITION = "video.transition"
TASK_RECUT = "video.recut"
# Pair-level reject rows kept per video; past it they are counted in one `rejects_capped`
# row. A 4-hour black video sampled at 30 fps would otherwise hold (and write) ~10^5 rows.
MAX_PAIR_REJECTS = 1000


def process_video(
    path: str | Path, config: VideoPairsConfig, rng: np.random.Generator, *, video_id: str | None = None,
    source: str | None = None,
) -> tuple[list[Sample], list[Reject]]:
    """Frame pairs of one video. Raises only for configuration errors (missing weights).

    `source` names the video in rejects (default: `path`): the URI when `path` is a local copy."""
    check_models(config)
    path = Path(path)
    video_id = video_id or path.name
    source = source or str(path)
    try:
        info = probe(path, config.limits)
        digest = content_hash(path)
    except VideoRejected as exc:
        return [], [_video_reject(exc, source, video_id, "source")]
    run = _VideoRun(info, config, rng, video_id, digest, source)
    duration = info.duration if info.duration > 0 else config.limits.max_duration_s
    try:
        times = sample_times(duration, config.sample_fps)
        with portable_cv(), prefetched(read_frames(info, times, size=run.store_size)) as frames:
            for frame in frames:
                # Pairs are planned on the sampling grid; frames carry their real times to meta.
                run.add(frame.index, times[frame.index], frame.time, frame.pixels)
        run.finish()
    except VideoRejected as exc:
        return [], [_video_reject(exc, source, video_id, "decode")]
    if run.n_frames < 2:
        exc = VideoRejected("too_few_frames", f"{run.n_frames} frame(s) at {config.sample_fps} fps sampling")
        return [], [_video_reject(exc, source, video_id, "decode")]
    if not run.samples and not run.rejects:
        exc = VideoRejected("no_pairs", f"no shot spans the minimum gap of {config.gap_range_s[0]} s")
        return [], [_video_reject(exc, source, video_id, "generate")]
    return run.samples, run.rejects


def check_models(config: VideoPairsConfig) -> None:
    """Fail before any work when a configured model folder lacks its files."""
    if config.optical_flow == "raft":
        raft_weights_file(config.raft_dir)
    if config.captioner == "vlm":
        captions.check_vlm_dir(config.vlm_dir)


def _video_reject(exc: VideoRejected, source: str, video_id: str, stage: str) -> Reject:
    return Reject(
        reason=exc.reason, detail=exc.detail, source=source, task=TASK_PAIR, stage=stage,
        meta={"video_id": video_id}, generator=GENERATOR,
    )  # fmt: skip


@dataclass
class _Frame:
    """A sampled frame and what is measured on it, once."""

    index: int
    grid: float  # the sampling time this frame stands for
    time: float  # its real presentation time
    shot: int
    rgb: np.ndarray  # stored size
    work: np.ndarray  # grey, working size
    hist: np.ndarray
    quality: FrameQuality
    problem: tuple[str, str] | None
    _hash: int | None = field(default=None, repr=False)
    # Motion from the previous sampled frame, measured for the cut check; a pair (prev, this)
    # reuses it instead of running the flow again.
    from_prev: tuple[int, MotionEstimate] | None = field(default=None, repr=False)

    @property
    def phash(self) -> int:
        if self._hash is None:
            self._hash = phash(self.work)
        return self._hash


class _VideoRun:
    def __init__(self, info: VideoInfo, config: VideoPairsConfig, rng: np.random.Generator, video_id: str, digest: str,
                 source: str):
        self.info, self.config, self.video_id, self.digest, self.source = info, config, video_id, digest, source
        # Independent sub-streams: changing how captions draw never moves which pairs are made.
        # (Spawned children depend only on their position: adding a fifth left the first four as they were.)
        r_pairs, r_stitch, r_text, r_crop, r_recut = rng.spawn(5)
        self.text_rng, self.crop_rng = r_text, r_crop
        self.recuts: RecutPlanner[_Frame] = RecutPlanner(config.recut_pairs, r_recut)
        self.planner: PairPlanner[_Frame] = PairPlanner(
            config.gap_range_s, config.anchor_every_s, 1.0 / config.sample_fps, r_pairs
        )
        duration = info.duration if info.duration > 0 else 0.0
        self.stitches = plan_stitches(duration, config.stitched_pairs, config.stitch_min_separation_s, r_stitch)
        self.stitch_a: _Frame | None = None
        long_side = max(info.width, info.height)
        s = min(1.0, (config.max_store_side or long_side) / long_side)
        self.store_size = (max(2, round(info.width * s)), max(2, round(info.height * s)))
        self.work_size = work_size(*self.store_size, config.work_side)
        self.original = (info.width, info.height)
        self.half = 0.5 / config.sample_fps
        self.seen = PairIndex(config.max_phash_distance)
        self.samples: list[Sample] = []
        self.rejects: list[Reject] = []
        self.rejects_dropped = 0
        self.prev: _Frame | None = None
        self.shot = 0
        self.n_frames = 0
        self.captioner = (
            captions.load_vlm(str(config.vlm_dir), config.vlm_max_new_tokens) if config.captioner == "vlm" else None
        )

    # ------------------------------------------------------------------ stream
    def add(self, index: int, grid: float, t: float, rgb: np.ndarray) -> None:
        q = measure_quality(rgb, self.config.quality)
        f = _Frame(index, grid, t, self.shot, rgb, to_work(rgb, self.work_size), colour_histogram(rgb), q,
                   frame_problem(q, self.config.quality))  # fmt: skip
        self.n_frames += 1
        prev = self.prev
        if prev is not None:
            est = self._motion(prev, f)
            f.from_prev = (prev.index, est)
            cut = judge_cut(hist_distance(prev.hist, f.hist), est, self.config.cut)
            if cut.is_cut:
                self._pairs(self.planner.close_shot(prev, prev.grid))
                self.shot += 1
                f.shot = self.shot
                if self.config.cut_pairs and not self.full:
                    self._transition(prev, f, "cut", {"hist_distance": cut.hist_distance,
                                                      "alignment": cut.alignment})  # fmt: skip
        self._pairs(self.planner.push(f, grid))
        self._stitch(f)
        self.recuts.offer(f.shot, f, f.time, f.problem is None)
        self.prev = f

    def finish(self) -> None:
        if self.prev is not None:
            self._pairs(self.planner.close_shot(self.prev, self.prev.grid))
        self._recuts()
        if self.rejects_dropped:
            self.rejects.append(Reject(
                reason="rejects_capped", detail=f"{self.rejects_dropped} more rejected pairs not listed (the first "
                f"{MAX_PAIR_REJECTS} are)", source=self.source, task=TASK_PAIR, stage="filter",
                meta={"video_id": self.video_id, "unlisted": self.rejects_dropped}, generator=GENERATOR,
            ))  # fmt: skip

    @property
    def full(self) -> bool:
        """The per-video cap (`max_pairs_per_video`, every kind of pair) is reached: nothing more
        is measured or held, so a strobe (a cut at every sampled frame) costs no more than a pan."""
        return len(self.samples) >= self.config.max_pairs_per_video

    def _pairs(self, pairs: list[tuple[_Frame, _Frame, float]]) -> None:
        for a, b, drawn in pairs:
            if not self.full:
                self._pair(a, b, drawn)

    def _stitch(self, f: _Frame) -> None:
        if not self.stitches or self.full:
            return
        ta, tb = self.stitches[0]
        if self.stitch_a is None and f.grid >= ta - self.half:
            self.stitch_a = f
        elif self.stitch_a is not None and f.grid >= tb - self.half:
            # "A closer shot" of another scene would be a false instruction: across a cut the
            # re-cut pairs (recuts.py) speak for the splice, and this stitch is not made.
            if f.shot == self.stitch_a.shot:
                crop, box = recrop(f.rgb, self.crop_rng, self.config.recrop_scale)
                self._transition(self.stitch_a, f, "stitched", {}, b_pixels=crop, extra={"crop_box": box})
            self.stitches.pop(0)
            self.stitch_a = None

    def _recuts(self) -> None:
        for out, into in self.recuts.finish():
            if self.full:
                return
            a, b = out.item, into.item
            order = "later" if into.shot > out.shot else "earlier"
            extra = {"order": order, "shot_a_s": [round(out.start, 4), round(out.end, 4)],
                     "shot_b_s": [round(into.start, 4), round(into.end, 4)]}  # fmt: skip
            self._transition(a, b, "recut", {"hist_distance": hist_distance(a.hist, b.hist)}, extra=extra,
                             task=TASK_RECUT, order=order)  # fmt: skip

    # ------------------------------------------------------------------ samples
    def _motion(self, a: _Frame, b: _Frame) -> MotionEstimate:
        if b.from_prev is not None and b.from_prev[0] == a.index:
            return b.from_prev[1]
        c = self.config
        return estimate_motion(a.work, b.work, method=c.optical_flow, work_side=c.work_side,
                               original_size=self.original, raft_dir=c.raft_dir)  # fmt: skip

    def _reject(self, reason: str, detail: str, a: _Frame, b: _Frame, task: str, meta: dict) -> None:
        if len(self.rejects) >= MAX_PAIR_REJECTS:
            self.rejects_dropped += 1
            return
        self.rejects.append(Reject(
            reason=reason, detail=detail, source=f"{self.source}#t={a.time:.3f},{b.time:.3f}", task=task,
            stage="filter", meta={"video_id": self.video_id, **meta}, generator=GENERATOR,
        ))  # fmt: skip

    def _meta(self, kind: str, a: _Frame, b: _Frame) -> dict:
        return {
            "kind": kind,
            "video_id": self.video_id,
            "t_a": round(a.time, 4),
            "t_b": round(b.time, 4),
            "gap_s": round(b.time - a.time, 4),
            "frame_a": a.index,
            "frame_b": b.index,
            "shot_a": a.shot,
            "shot_b": b.shot,
            "source": self.info.as_meta(),
            "stored_resolution": list(self.store_size),
        }

    def _pair(self, a: _Frame, b: _Frame, drawn_gap: float) -> None:
        meta = self._meta("pair", a, b)
        meta["drawn_gap_s"] = round(drawn_gap, 4)
        for f in (a, b):
            if f.problem:
                # A featureless frame also fails the blur test; "no motion can be seen" says more.
                if f.problem[0] == "blurry" and is_flat(a.work, b.work):
                    return self._unmeasurable(a, b, meta, "the frames have no contrast to follow")
                return self._reject(*f.problem, a, b, TASK_PAIR, meta)
        est = self._motion(a, b)
        if not est.measurable:
            return self._unmeasurable(a, b, meta, f"too little texture to follow even after a {est.contrast_gain:.1f}x "
                                      "contrast stretch")  # fmt: skip
        problem = motion_problem(est.motion_norm, self.config.motion, est.motion_px, self.config.min_motion_px)
        if problem:
            return self._reject(*problem, a, b, TASK_PAIR, {**meta, "motion_px": round(est.motion_px, 3)})
        dup = self.seen.find(a.phash, b.phash)
        if dup is not None:
            return self._reject("near_duplicate", f"both frames within {self.seen.max_distance} bits of kept pair {dup}",
                                a, b, TASK_PAIR, meta)  # fmt: skip
        self.seen.add(a.phash, b.phash)
        words = captions.camera_words(est, self.info.diagonal)
        meta["camera"] = {**est.as_meta(), "words": words}
        scores = {
            "motion_px": est.motion_px,
            "motion_norm": est.motion_norm,
            "camera_px": est.camera_px,
            "local_px": est.local_px,
            "inlier_fraction": est.inlier_fraction,
            # Not "sharpness"/"exposure": those keys belong to datagen.scoring.quality, on another
            # scale; reusing them would clash when that scorer runs on these samples.
            "frame_sharpness": min(a.quality.sharpness, b.quality.sharpness),
            "mean_luma": (a.quality.mean_luma + b.quality.mean_luma) / 510.0,
        }
        text = captions.template_instruction("pair", self.text_rng, gap_s=b.time - a.time, camera=words)
        weight = motion_weight(est.motion_norm, self.config.motion)
        self._emit(TASK_PAIR, "pair", a, b, b.rgb, text, scores, weight, meta)

    def _unmeasurable(self, a: _Frame, b: _Frame, meta: dict, why: str) -> None:
        # No motion number in the row: an unobservable motion is not a small one.
        self._reject("unmeasurable_motion", f"motion cannot be measured: {why}", a, b, TASK_PAIR, meta)

    def _transition(self, a: _Frame, b: _Frame, kind: str, scores: dict, *, b_pixels=None, extra=None,
                    task: str = TASK_TRANSITION, order: str = "") -> None:
        meta = {**self._meta(kind, a, b), **(extra or {})}
        for f in (a, b):
            if f.problem:
                return self._reject(*f.problem, a, b, task, meta)
        scores = {**scores, "frame_sharpness": min(a.quality.sharpness, b.quality.sharpness)}
        text = captions.template_instruction(kind, self.text_rng, order=order)
        self._emit(task, kind, a, b, b.rgb if b_pixels is None else b_pixels, text, scores, 1.0, meta)

    def _emit(self, task, kind, a, b, b_pixels, text, scores, weight, meta) -> None:
        meta["caption_source"] = "template"
        if self.captioner is not None:
            answer = self.captioner(a.rgb, b_pixels)
            if answer:
                text, meta["caption_source"] = captions.vlm_instruction(answer), "vlm"
        self.samples.append(Sample(
            task=task,
            instruction=text,
            inputs=[Picture(a.rgb, "source", "jpeg")],
            outputs=[Picture(np.ascontiguousarray(b_pixels), "target", "jpeg")],
            meta=meta,
            scores={k: quantize(v) for k, v in scores.items()},
            scorer=f"datagen.video.motion:{self.config.optical_flow}@{self.config.work_side}",
            weight=quantize(weight),
            source_ids=[self.video_id, self.digest],
            generator=GENERATOR,
            sample_id=make_id(task, self.digest, kind, f"{a.time:.4f}", f"{b.time:.4f}"),
        ))  # fmt: skip
