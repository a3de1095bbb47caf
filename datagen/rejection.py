"""The one exception shape for input that cannot enter a dataset.

Loaders and checkers raise a subclass with a stable short `reason` code and a human
`detail`; the flows turn it into a reject row, so the same two fields reach the card.
"""

from __future__ import annotations


class Rejected(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
