"""The run engine: a run spec, one result store, one execute (design: docs/architecture.md, "Runs").

- :mod:`movierec.runs.spec`: :class:`RunSpec` (model, settings, split, protocols, phases) and the TOML configs
  that list runs;
- :mod:`movierec.runs.store`: the layout a run is kept in and the key that decides reuse;
- :mod:`movierec.runs.engine`: :class:`Session` and its ``execute``: fit, validate, test from everything before
  the test item, persist; or fit a final model on all the data;
- :mod:`movierec.runs.folders`: ``movierec train``'s run folder (a bundle beside its split): load, evaluate.
"""

from movierec.runs.engine import PER_USER, RunResult, Session, execute
from movierec.runs.spec import PHASES, RunSpec, expand_runs, slug, validate_config
from movierec.runs.store import REUSED, RunFolder, data_key, key_hash, resolved_settings, run_key, stale_reason

__all__ = ["PER_USER", "PHASES", "REUSED", "RunFolder", "RunResult", "RunSpec", "Session", "data_key",
           "execute", "expand_runs", "key_hash", "resolved_settings", "run_key", "slug", "stale_reason",
           "validate_config"]
