"""Re-cut pairs (iMontage): splice two shots of one video at a new cut point.

A detected-cut pair shows what the editor did: the last frame before a cut, the first after
it. A re-cut shows what an editor could have done with the same footage: leave shot i at a
random moment (frame A) and come in on shot j at a random moment (frame B), for any two
different shots, in either order. Shot boundaries are the ones the stream already knows, so
the pair needs no heuristic of its own: A and B lie in different shots by construction, and
their shots and times are in meta.

Streaming with bounded memory: each shot offers its usable frames one by one and keeps one,
uniformly at random (a reservoir of one); finished shots enter a reservoir of `hold` shots
(uniform over all shots of the video, however many). At the end of the video, `n` ordered
pairs of distinct held shots are drawn without repetition. Every draw comes from the RNG
handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class HeldShot(Generic[T]):
    shot: int
    item: T  # the frame this shot gives a re-cut
    start: float  # time of the shot's first and last sampled frame, seconds
    end: float


class RecutPlanner(Generic[T]):
    def __init__(self, n: int, rng: np.random.Generator):
        self.n = n
        self.hold = 2 * n  # enough distinct shots for n pairs without leaning on a few
        self.rng = rng
        self.held: list[HeldShot[T]] = []
        self.shots_seen = 0
        self._current: HeldShot[T] | None = None
        self._offered = 0

    def offer(self, shot: int, item: T, t: float, usable: bool) -> None:
        """The next sampled frame (time order). Unusable frames (blurry, black) still mark the
        shot's extent but are never chosen."""
        if self.n <= 0:
            return
        cur = self._current
        if cur is not None and cur.shot != shot:
            self._close()
            cur = None
        if cur is None:
            cur = self._current = HeldShot(shot, None, t, t)  # type: ignore[arg-type]
            self._offered = 0
        cur.end = t
        if usable:
            self._offered += 1
            if int(self.rng.integers(self._offered)) == 0:  # keeps each of k frames with chance 1/k
                cur.item = item

    def _close(self) -> None:
        cur, self._current = self._current, None
        if cur is None or cur.item is None:
            return
        self.shots_seen += 1
        if len(self.held) < self.hold:
            self.held.append(cur)
            return
        k = int(self.rng.integers(self.shots_seen))  # keeps each of the shots with chance hold/seen
        if k < self.hold:
            self.held[k] = cur

    def finish(self) -> list[tuple[HeldShot[T], HeldShot[T]]]:
        """The (out-shot, in-shot) pairs of the video, in the order drawn; none with one shot."""
        self._close()
        shots = sorted(self.held, key=lambda h: h.shot)
        m = len(shots)
        if m < 2:
            return []
        # Ordered pairs (i, j), i != j, indexed 0 .. m(m-1)-1: draw without repetition.
        n = min(self.n, m * (m - 1))
        picks = self.rng.choice(m * (m - 1), size=n, replace=False)
        out = []
        for p in picks.tolist():
            i, r = divmod(int(p), m - 1)
            j = r if r < i else r + 1
            out.append((shots[i], shots[j]))
        return out
