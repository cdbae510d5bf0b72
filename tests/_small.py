"""Params overrides that make `train` fast on a few hundred simulated customers (shared by the slow tests)."""

SMALL_TRAINING = [
    "models.propensity.n_trials=2",
    "models.propensity.min_positives=30",
    "models.propensity.min_negatives=30",
    "models.personas.bootstrap_resamples=2",
    "models.personas.k_range=[4, 6]",
    "labels.n_snapshots=4",
    "run.reference_time=2030-01-01",
]
