"""How work runs on Ray: the one Ray adapter (start or join a cluster, run shards through
Ray Data) and the dataset harness that drives it (plan -> shards -> Lance -> one commit).

Below `flows/` and `training/`, above `datagen/` and `models/`. No Prefect here.
"""
