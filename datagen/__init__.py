"""Data logic of UniMontage: pure functions over the many-to-many sample record.

Nothing in this package imports Prefect or Ray; flows/ adapts it to both.
"""

__version__ = "0.1.0"
