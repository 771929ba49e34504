"""``movierec experiment``: a TOML grid of runs (:mod:`movierec.runs.spec`) done on one split by the run engine
and compared under both protocols.

Each run is kept under ``runs/<slug>/`` of the output folder (:mod:`movierec.runs.store`), with the key of
what its result depends on. Started again into the same folder, an experiment reuses a run only when its
stored key matches exactly; otherwise it does the run again and says why. Hybrids reuse the models fitted
by earlier runs of the grid. ``results.csv``/``results.md``/``results.json`` hold the table, and
``experiment.json`` what was reused and why the rest was not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from movierec.comparison import write_comparison
from movierec.data.dataset import Dataset
from movierec.fsutil import atomic_write_text, read_toml
from movierec.runs import REUSED, RunSpec, Session, expand_runs, validate_config

__all__ = ["REUSED", "load_config", "run_experiment"]


def load_config(path: str | Path) -> dict[str, Any]:
    return read_toml(path)


def run_experiment(
    config: dict[str, Any],
    dataset: Dataset,
    out: str | Path,
    progress: Callable[[str, dict, str], None] | None = None,
    train_progress: bool = False,
    on_run_start: Callable[[RunSpec], None] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[dict]:
    """Do every run of ``config`` on one split of ``dataset`` (reusing what ``out`` holds under the same key);
    write the results table.

    ``progress(name, row, note)`` is called after each run; ``note`` says what happened: "trained",
    :data:`REUSED`, or "retrained: " and why. ``on_run_start(spec)`` is called before a run is trained (not
    for a reused one) and ``on_epoch_end(record)`` after each epoch of a model trained in epochs (its result
    is ignored: progress never stops training). ``overrides``: ``--set`` settings, over every run that has
    them (:func:`movierec.runs.expand_runs`).
    """
    validate_config(config, "experiment")
    exp = config.get("experiment", {})
    specs = expand_runs(config, overrides, split=exp.get("split", "loo"), seed=int(exp.get("seed", 42)),
                        ks=tuple(exp.get("ks", [10])), refit=bool(exp.get("refit", True)))
    session = Session(dataset, root=Path(out), save_models=False)
    parts = {s.settings.get(k) for s in specs for k in ("a", "b") if s.model.startswith("hybrid")}
    hook = (lambda record: on_epoch_end(record) and None) if on_epoch_end is not None else None
    rows, reused, retrained = [], [], {}
    for spec in specs:
        result = session.execute(spec, progress=train_progress, on_epoch_end=hook,
                                 on_start=(lambda s, note: on_run_start(s)) if on_run_start else None)
        row = {"model": spec.name, "model_class": spec.model, **{k: v for k, v in result.row.items()
                                                               if k not in ("model", "family")}}
        rows.append({**row, "settings": spec.settings})
        if result.note == REUSED:
            reused.append(spec.name)
        elif result.note.startswith("retrained: "):
            retrained[spec.name] = result.note.removeprefix("retrained: ")
        if spec.model not in parts:
            session.forget(result)  # keep in memory only what a later hybrid may reuse
        if progress:
            progress(spec.name, rows[-1], result.note)
    split = session.split_for(specs[0]) if specs else None
    write_comparison([{k: v for k, v in r.items() if k != "settings"} for r in rows], out)
    atomic_write_text(Path(out) / "experiment.json", json.dumps(
        {"config": config, "dataset": dataset.info(), "fingerprint": dataset.fingerprint(),
         "split": split.summary() if split is not None else None, "reused": reused, "retrained": retrained},
        indent=2, default=str))
    return rows
