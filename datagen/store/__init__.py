"""Where datasets live and how their versions are recorded: Lance I/O on local disk or
object storage, the order-independent content hash, and the lineage graph.

Prefect- and Ray-free: the flows, the Ray harness and the trainer all build on it.
"""
