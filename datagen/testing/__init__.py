"""Test- and benchmark-only builders: random-weight models in the layouts the product loads.

Nothing outside tests/ and benchmarks/ imports this package (tests/test_import_boundaries.py
checks it); product code recognises such folders with `datagen.weights.is_tiny_random`.
"""
