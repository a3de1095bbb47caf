"""Where datasets live and how their versions are recorded: Lance I/O on local disk or
object storage, the order-independent content hash, and the lineage graph.

Prefect- and Ray-free: the flows, the Ray harness and the trainer all build on it.
"""

import os

# Lance's Rust logger warns on every first write to a new dataset path; our shard writers
# create datasets by design. Ray workers inherit this from the driver's environment.
os.environ.setdefault("LANCE_LOG", "error")
