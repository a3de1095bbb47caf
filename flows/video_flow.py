"""Video frame pairs (iMontage): plan videos -> Ray -> Lance -> card (motion histogram) -> lineage."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from compute import harness
from datagen.store import lineage
from flows.tasks import publish
from flows.workers.video import VideoWorker

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".gif", ".mpg", ".mpeg", ".ts"}


def list_videos(videos: str) -> list[tuple[str, int]]:
    """(URI, size in bytes) of every video file under a local folder or an object-store prefix."""
    fs, root = pafs.FileSystem.from_uri(videos if "://" in videos else os.path.abspath(videos))
    info = fs.get_file_info(root)
    if info.type != pafs.FileType.Directory:
        raise FileNotFoundError(f"--videos {videos} is not a folder or prefix")
    prefix = videos.rstrip("/") if "://" in videos else root
    found = []
    for f in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if f.type == pafs.FileType.File and Path(f.path).suffix.lower() in VIDEO_SUFFIXES:
            rel = f.path[len(root):].lstrip("/")
            found.append((f"{prefix}/{rel}", f.size or 0))
    if not found:
        raise ValueError(f"--videos {videos}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return sorted(found)


def plan_video_pairs(out: str, videos: str, seed: int, overrides: dict[str, Any],
                     shard_size: int = 2) -> harness.DatasetPlan:
    from datagen.video import VideoPairConfig
    cfg = VideoPairConfig().as_dict()
    for key, value in overrides.items():
        if key == "min_motion_px":
            cfg["motion"] = dict(cfg["motion"], min_px=float(value))
        else:
            cfg[key] = value
    VideoWorker(seed, cfg)  # validates the configuration (and model folders) before any work
    files = list_videos(videos)
    root = videos.rstrip("/") if "://" in videos else os.path.abspath(videos)
    items = [{"index": i, "source": uri, "video_id": uri[len(root):].lstrip("/")} for i, (uri, _) in enumerate(files)]
    local = "://" not in videos
    srcs = [{"kind": "video", "uri": uri, "bytes": size,
             "content_hash": lineage.file_hash(uri) if local else None} for uri, size in files]
    return harness.DatasetPlan(
        kind="video-pairs", out=out, seed=seed, config={"video": cfg, "videos": [s["content_hash"] or s["uri"] for s in srcs]},
        items=items, make_worker=partial(VideoWorker, seed, cfg), shard_size=shard_size, sources=srcs,
        parameters={"out": out, "videos": videos, "seed": seed, **overrides}, generator="datagen.video")


@task(name="plan-video-pairs", cache_policy=NO_CACHE)
def plan_task(out: str, videos: str, seed: int, overrides: dict[str, Any]) -> harness.DatasetPlan:
    plan = plan_video_pairs(out, videos, seed, overrides)
    get_run_logger().info("planned %d videos", len(plan.items))
    return plan


@flow(name="video-pairs-dataset", log_prints=True)
def video_pairs_flow(out: str, videos: str, seed: int = 0, min_motion: float | None = None, fps: float = 2.0,
                     flow_method: str = "dis", workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Frame pairs within shots and across cuts, motion-scored (pixels of the original resolution)."""
    overrides: dict[str, Any] = {"sample_fps": fps, "flow_method": flow_method}
    if min_motion is not None:
        overrides["min_motion_px"] = min_motion
    plan = plan_task(out, videos, seed, overrides)
    result, key = publish(plan, workers, progress)
    return result.summary() | {"card": key}

