"""Training: Ray Train jobs that fit UnifiedDiT on Lance datasets.

config (one dataclass) -> index (Ray Data read_lance of pinned versions) -> mixing (the
step plan) -> data (Ray Data decode per step) -> loop (per worker) -> job (TorchTrainer),
with lineage nodes for the run and each checkpoint. Entry points: `training.job.run_training`
(the CLI `unimontage train` and the Prefect flow `flows.train_flow` call it).
"""
