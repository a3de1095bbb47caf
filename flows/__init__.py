"""Prefect flows and the CLI: plan shards -> Ray -> Lance -> card -> lineage. Thin by design."""

import os

# Lance's Rust logger warns on every first write to a new dataset path; our shard writers
# create datasets by design. Ray workers inherit this from the driver's environment.
os.environ.setdefault("LANCE_LOG", "error")
