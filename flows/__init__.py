"""Prefect flows and the CLI: plan shards -> Ray -> Lance -> card -> lineage. Thin by design."""

import os

# Set before Prefect, Ray or transformers are imported by anything under flows/. No machine
# here reaches the internet: no analytics, no usage stats, no model hub.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The ephemeral Prefect server needs more than Prefect's 20 s default on a busy 2-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
