"""Geometric consistency between two views: SIFT matches verified by a RANSAC epipolar fit.

Two photos of one rigid scene from different viewpoints share many matches that satisfy a
single fundamental matrix; unrelated images yield few ratio-test survivors and even fewer
epipolar inliers. The score is the inlier fraction of the tentative matches, zeroed when
too few inliers remain to trust the fit (8 points always "fit" some F).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from datagen.portable import portable_cv
from datagen.schema import Sample
from datagen.scoring.base import Scorer, ScoreResult, reference_and_targets

WORK_SIDE = 512


@dataclass(frozen=True)
class PairGeometry:
    score: float  # inlier fraction in [0, 1]; 0 when inliers < min_inliers
    inliers: int
    matches: int  # ratio-test survivors
    keypoints: tuple[int, int]


def _features(img: np.ndarray, n_features: int):
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    scale = WORK_SIDE / max(grey.shape[:2])
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # SIFT's default keypoint order is by response; capping keeps time bounded on busy frames.
    # Baseline kernels, one thread: with dispatched kernels keypoints move with the CPU, and
    # with several threads they vary from run to run.
    with portable_cv():
        sift = cv2.SIFT_create(nfeatures=n_features)
        kps, desc = sift.detectAndCompute(grey, None)
    return kps, desc


def pair_geometry(
    a: np.ndarray,
    b: np.ndarray,
    *,
    ratio: float = 0.8,
    min_inliers: int = 20,
    threshold_px: float = 2.0,
    n_features: int = 1000,
) -> PairGeometry:
    return match_features(_features(a, n_features), _features(b, n_features), ratio=ratio, min_inliers=min_inliers, threshold_px=threshold_px)


def match_features(fa, fb, *, ratio: float = 0.8, min_inliers: int = 20, threshold_px: float = 2.0) -> PairGeometry:
    """Ratio-test matches of two (keypoints, descriptors) sets, verified by a RANSAC F-matrix."""
    (kpa, da), (kpb, db) = fa, fb
    n_kp = (len(kpa), len(kpb))
    if da is None or db is None or len(kpa) < 8 or len(kpb) < 8:
        return PairGeometry(0.0, 0, 0, n_kp)
    with portable_cv():
        return _match(kpa, da, kpb, db, n_kp, ratio, min_inliers, threshold_px)


def _match(kpa, da, kpb, db, n_kp, ratio, min_inliers, threshold_px) -> PairGeometry:
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if len(good) < 8:
        return PairGeometry(0.0, 0, len(good), n_kp)
    pa = np.float32([kpa[m.queryIdx].pt for m in good])
    pb = np.float32([kpb[m.trainIdx].pt for m in good])
    # USAC_MAGSAC is deterministic for a fixed input (its sampler is seeded internally).
    _, mask = cv2.findFundamentalMat(pa, pb, cv2.USAC_MAGSAC, threshold_px, 0.999, 2000)
    inliers = int(mask.sum()) if mask is not None else 0
    score = inliers / len(good) if inliers >= min_inliers else 0.0
    return PairGeometry(float(score), inliers, len(good), n_kp)


class GeometricConsistencyScorer(Scorer):
    """Consecutive pairs along the sample: reference -> view 1 -> view 2 -> ...

    Consecutive views are a few tens of degrees apart, within SIFT's reach; a far view is
    checked through the chain rather than against the reference directly, where wide
    baselines would fail even for a perfect capture.
    """

    name = "geo_consistency"
    version = "1"
    batch_size = 8

    def __init__(self, min_inliers: int = 20, ratio: float = 0.8, threshold_px: float = 2.0, n_features: int = 1000):
        super().__init__()
        self.kw = {"min_inliers": min_inliers, "ratio": ratio, "threshold_px": threshold_px}
        self.n_features = n_features

    def score_batch(self, samples: list[Sample]) -> list[ScoreResult]:
        out: list[ScoreResult] = []
        for s in samples:
            ref, targets = reference_and_targets(s)
            views = ([ref] if ref is not None else []) + targets
            if len(views) < 2:
                out.append(self.reject("too_few_views", f"{len(views)} image(s); need 2 to compare", s))
                continue
            feats = [_features(v, self.n_features) for v in views]  # each view is in up to two pairs
            pairs = [match_features(x, y, **self.kw) for x, y in zip(feats, feats[1:])]
            out.append(
                {
                    "geo_consistency": float(np.mean([p.score for p in pairs])),
                    "geo_consistency_min": float(min(p.score for p in pairs)),
                    "geo_inliers_min": float(min(p.inliers for p in pairs)),
                }
            )
        return out
