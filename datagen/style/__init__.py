"""Style samples (iMontage style reference; DreamO style and ID + style tasks).

    maker = StyleMaker(StyleConfig(num=8), Pools(embedded_pool()))   # classical backend
    sample = maker.make("style.transfer", sample_rng(seed, index))   # Sample | Reject

Targets come from built-in looks in integer arithmetic (`looks.py`: exact by construction,
no weights) or from a generator backend (a local diffusers pipeline or an HTTP endpoint, the
storyboard's backends). `datagen.scoring.leakage.StyleLeakageScorer` rejects outputs that are
their style image, their content unchanged, or their identity reference pasted. The product
(config, plan, per-item function) is declared in `datagen.style.product`.
"""

from datagen.style.config import TASKS, StyleConfig
from datagen.style.looks import LOOKS
from datagen.style.samples import Pools, StyleMaker
from datagen.style.sources import embedded_pool, folder_pool

__all__ = ["LOOKS", "TASKS", "Pools", "StyleConfig", "StyleMaker", "embedded_pool", "folder_pool"]
