"""Hyper-parameter tuning (``movierec tune``): an Optuna search of one model's settings on the validation
part of a split, never its test part.

- ``spaces``: the built-in search space of every tunable model (:data:`SPACES`), ``--space FILE.toml``
  overrides, and the checks that every searched setting is a real setting within its declared limits
- ``search``: :func:`tune` (TPE sampler, median pruner on the trainer's per-epoch validation NDCG@10)
- ``outputs``: best.toml (a ``[[run]]`` table), trials.csv, optuna.html, study.json
"""

from movierec.tuning.outputs import OUTPUT_FILES, write_outputs
from movierec.tuning.search import METRICS, TrialRow, TuneResult, objective_value, tune
from movierec.tuning.spaces import KINDS, SPACES, Param, check_space, load_space_file, resolve_space

__all__ = ["KINDS", "METRICS", "OUTPUT_FILES", "SPACES", "Param", "TrialRow", "TuneResult", "check_space",
           "load_space_file", "objective_value", "resolve_space", "tune", "write_outputs"]
