"""Choosing frame pairs within a shot while the video streams past.

Frames arrive in time order. Within a shot, an anchor (frame A) is taken about every
`anchor_every_s` seconds, starting at a random phase; each anchor draws its gap from
`gap_range_s` and is paired with the first later frame of the same shot at or past that
gap. When the shot ends first (a cut, or the end of the video), an open anchor takes the
shot's last frame if that is at least the minimum gap away: short clips still give pairs.
A cut closes all open anchors, so a pair never spans a shot boundary, and only open anchors
are held in memory (a few frames, however long the video).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class _Anchor(Generic[T]):
    item: T
    time: float
    due: float  # time of the B frame it wants


class PairPlanner(Generic[T]):
    def __init__(self, gap_range_s: tuple[float, float], anchor_every_s: float, step_s: float, rng: np.random.Generator):
        self.lo, self.hi = gap_range_s
        self.every = anchor_every_s
        self.half = step_s / 2  # tolerance of the sampling grid
        self.rng = rng
        self.open: list[_Anchor[T]] = []
        self.next_anchor: float | None = None

    def close_shot(self, last: T, t: float) -> list[tuple[T, T, float]]:
        """End the current shot at frame `last` (time t); returns the pairs it can still close."""
        done = [(a.item, last, a.due - a.time) for a in self.open if t - a.time >= self.lo - 1e-6]
        self.open = []
        self.next_anchor = None
        return done

    def push(self, item: T, t: float) -> list[tuple[T, T, float]]:
        """Add the next frame of the current shot; returns the (A, B, drawn gap) it completes."""
        done, still_open = [], []
        for a in self.open:
            gap = t - a.time
            if t >= a.due - self.half and gap >= self.lo - 1e-6:
                done.append((a.item, item, a.due - a.time))
            elif gap <= self.hi + self.half:
                still_open.append(a)
        self.open = still_open
        if self.next_anchor is None:
            self.next_anchor = t + float(self.rng.uniform(0.0, self.every))
        if t >= self.next_anchor - self.half:
            self.open.append(_Anchor(item, t, t + float(self.rng.uniform(self.lo, self.hi))))
            while self.next_anchor <= t + self.half:
                self.next_anchor += self.every
        return done
