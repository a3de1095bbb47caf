"""Prefect flows and the CLI: plan shards -> Ray -> Lance -> card -> lineage. Thin by design."""
