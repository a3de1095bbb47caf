"""UnifiedDiT and its parts: RoPE layout, blocks, rectified flow, sampler, encoders, checkpoints.

Import from the submodules (`models.dit`, `models.sampling`, ...); this package file stays
empty of imports so `import models` never pulls in transformers or diffusers.
"""
