"""The run engine: one :meth:`Session.execute` for every run that ``train``, ``compare``, ``experiment``, ``study``
and ``tune`` make.

A run goes through its spec's phases (:data:`movierec.runs.spec.PHASES`):

1. **fit** (:func:`movierec.fitting.fit_model`): on the split's training part; the validation part makes the
   model's choices (best epoch, EASE's λ, content's blend, a hybrid's weight). A hybrid takes its parts from
   the models this session fitted already, when they match exactly.
2. **validate**: NDCG@10 under sampled-100 on the validation part (the number every choice was made on).
3. **test**: the test part is read from everything each user did before the test item: the training part
   plus the validation interaction (:meth:`Split.test_input`). A model that scores any history exactly
   (``Recommender.scores_history_exactly``: item-based models, autoencoders, SASRec, iALS's least-squares
   fold-in) is tested as fitted, reading that history (:meth:`Recommender.with_history`); a model with per-user
   parameters learned by gradient steps (GMF, MLP, NeuMF, content-neural) is refitted on training +
   validation with its validation choices held fixed (:func:`movierec.fitting.refit_with_choices`); a hybrid
   combines its parts' test models with its own choices kept. With ``spec.refit`` every model is refitted.
   Validation never sees the test item, and the test item is in no input.
4. **final** (instead of the others): fit on every interaction, nothing held out, with the settings and
   validation choices of an evaluated run (a model for serving).

Then it persists, in one atomic write of the run's folder (:mod:`movierec.runs.store`): the per-user results,
the top-10 lists, the bundle of the model the test read, and the keyed result. A run whose stored key matches
is reused instead.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from movierec.artifacts import bundle_writer
from movierec.comparison import json_dumps
from movierec.data.dataset import Dataset
from movierec.data.splits import Split, everything, make_split
from movierec.evaluation import EvalResult, evaluate, evaluate_protocols
from movierec.evaluation.columns import column, metrics_by_protocol, result_columns
from movierec.fitting import fit_model, refit_model, refit_with_choices
from movierec.fsutil import atomic_write_dir
from movierec.models import RunContext, build_model, family_of
from movierec.models.base import Recommender, same_training_pairs
from movierec.runs.spec import RunSpec
from movierec.runs.store import (
    REUSED,
    TEST_INPUT,
    RunFolder,
    check_checkpoints,
    data_key,
    key_hash,
    read_stored,
    run_key,
    stored_reason,
    write_tables,
)

__all__ = ["PER_USER", "RunResult", "Session", "execute"]

PER_USER = ("HR@10", "NDCG@10")
"""The per-user metrics kept for every evaluated user (segments, paired tests)."""


@dataclass
class RunResult:
    """One run's outcome.

    row: its comparison-table row; per_user: DataFrame indexed by user index with columns like
    ``NDCG@10 [full]`` (None without a test); top10: (users int64 [n], items int64 [n, 10]) every evaluated
    user's full-ranking top 10; choices: the settings that make its validation choices again (the key to a
    refit or a final model: ``{**settings, **choices}``); fitted / tested: the model fitted on the training
    part and the one the test read, when made in this process; note: "trained", :data:`REUSED` or
    "retrained: <why>"; folder: where it is kept, if anywhere.
    """

    spec: RunSpec
    row: dict[str, Any]
    per_user: pd.DataFrame | None = None
    top10: tuple[np.ndarray, np.ndarray] | None = None
    choices: dict[str, Any] = field(default_factory=dict)
    fitted: Recommender | None = field(default=None, repr=False)
    tested: Recommender | None = field(default=None, repr=False)
    note: str = "trained"
    folder: RunFolder | None = None
    valid: EvalResult | None = field(default=None, repr=False)
    results: dict[str, EvalResult] = field(default_factory=dict, repr=False)
    like_metrics: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model(self) -> str:
        return self.spec.model

    @property
    def family(self) -> str:
        return family_of(self.spec.model)

    @property
    def settings(self) -> dict[str, Any]:
        return self.spec.settings

    @property
    def fixed_settings(self) -> dict[str, Any]:
        """The run's settings with its validation choices written in (what a final model is trained with)."""
        return {**self.spec.settings, **self.choices}


@dataclass
class Session:
    """Runs on one dataset, sharing its splits and the models fitted so far (handed to later hybrids).

    ``root``: an experiment's or study's output folder; its runs are kept (and reused) under ``runs/`` and
    ``final/`` there. ``save_models``: keep each run's bundle. ``split``: the split every non-final run uses
    (default: made from the spec's split and seed, once per pair).
    """

    dataset: Dataset
    split: Split | None = None
    root: Any = None
    save_models: bool = True
    reuse: bool = True
    feats: np.ndarray | None = field(default=None, repr=False)
    fitted: dict[str, Recommender] = field(default_factory=dict, repr=False)  # by run: fitted on the training part
    tested: list[Recommender] = field(default_factory=list, repr=False)  # refitted on training + validation
    _splits: dict[tuple[str, int], Split] = field(default_factory=dict, repr=False)
    _refit_checkpoint: Any = field(default=None, repr=False)  # the refit checkpoint of the run being executed

    def __post_init__(self) -> None:
        if self.feats is None:
            self.feats = self.dataset.genre_features()

    def split_for(self, spec: RunSpec) -> Split:
        """The split a run is made on: everything for a final run, else the session's split or the spec's."""
        if spec.final:
            return everything(self.dataset)
        if self.split is not None:
            return self.split
        key = (spec.split, spec.seed)
        if key not in self._splits:
            self._splits[key] = make_split(self.dataset, spec.split, spec.seed)
        return self._splits[key]

    def key(self, spec: RunSpec) -> dict[str, Any]:
        """The key a stored result of ``spec`` must match to be reused (:func:`movierec.runs.store.run_key`)."""
        return run_key(spec, data_key(self.dataset, self.split_for(spec)))

    def folder(self, spec: RunSpec) -> RunFolder | None:
        if self.root is None:
            return None
        return RunFolder.in_store(self.root, spec.name, self.key(spec), spec.final)

    # -- the one execute -------------------------------------------------------------------------------------
    def execute(self, spec: RunSpec, folder: RunFolder | None = None, *, device: str = "auto",
                progress: Any = False, on_epoch_end: Callable[[dict[str, Any]], Any] | None = None,
                resume: bool = True, rank: int = 0, world_size: int = 1, keep: bool = True,
                on_start: Callable[[RunSpec, str], None] | None = None, where: str | None = None,
                like: RunResult | None = None) -> RunResult:
        """Do run ``spec`` (module docstring) and return its result; keep it in ``folder`` (default: the
        session's store, if it has one), or reuse what is kept there under the same key.

        ``on_start(spec, note)`` is called before the run is trained ("trained" or "retrained: why"; not for a
        reused run); ``on_epoch_end(record)`` after every epoch of a model trained in epochs (False stops the
        fit: tuning's pruner). ``rank``/``world_size``: a data-parallel fit (every rank fits and refits; rank 0
        alone validates, tests and writes). ``keep``: hand the fitted models to later runs of the session.
        ``like``: for a final run, the evaluated run it was made like (its test figures go into the bundle).
        """
        folder = folder or self.folder(spec)
        split = self.split_for(spec)
        where = where or f"run {spec.name!r}"
        key: dict[str, Any] = {}
        if folder is not None:
            build_model(spec.model, spec.settings, where)  # bad settings: one line naming their source, first
            key = run_key(spec, data_key(self.dataset, split))
        note = "trained"
        if folder is not None and self.reuse and rank == 0:
            reason = stored_reason(folder, key)
            if reason == "":
                return self._reused(spec, folder)
            if reason:
                note = f"retrained: {reason}"
        if folder is not None:
            for stale in folder.stale_checkpoints():  # our own checkpoints of other settings
                shutil.rmtree(stale, ignore_errors=True)
        if on_start is not None:
            on_start(spec, note)
        if folder is not None and resume:
            check_checkpoints(folder, key_hash(key))
        self._refit_checkpoint = folder.refit_checkpoint if folder is not None else None
        context = RunContext(device=device, checkpoint_dir=folder.checkpoint if folder else None,
                             checkpoint_key=key_hash(key) if folder is not None else None, resume=resume,
                             progress=progress, on_epoch_end=on_epoch_end, rank=rank, world_size=world_size,
                             prefitted=list(self.fitted.values()), **spec.hardware)
        if spec.final:
            model, report = fit_model(spec.model, spec.settings, split, self.dataset.catalog, context, where)
            row = {"model": spec.name, "family": family_of(spec.model), **report.row(), "final": True}
            result = RunResult(spec, row, choices=model.chosen_settings(), fitted=model, tested=model, note=note,
                               folder=folder)
            if like is not None:
                row["like"] = like.name
                result.like_metrics = metrics_by_protocol(like.row)
            if rank == 0 and folder is not None:
                self._write(folder, result, model, split, key, "all", report.train_log)
            return result

        model, report = fit_model(spec.model, spec.settings, split, self.dataset.catalog, context, where)
        row: dict[str, Any] = {"model": spec.name, "family": family_of(spec.model), **report.row()}
        chosen = {k: row.pop(k) for k in list(row) if k.removeprefix("tuned_") in report.chosen}
        if model.parts():  # the runs of this session that served as this hybrid's parts (by identity)
            row["reused_parts"] = [name for part in model.parts() for name, m in self.fitted.items() if m is part]
        row.update(chosen)
        result = RunResult(spec, row, choices=model.chosen_settings(), fitted=model, note=note, folder=folder)
        tested, how = model, "train"
        if "test" in spec.phases:
            t0 = time.perf_counter()
            tested, how = self.test_model(spec, model, split, context)
            if how in ("refit", "parts"):
                row["refit_seconds"] = round(time.perf_counter() - t0, 2)
        if rank != 0:
            return result
        if "validate" in spec.phases and split.valid is not None and split.valid.negatives is not None:
            result.valid = evaluate(model, split, "sampled-100", "valid", (10,))
            row[column("NDCG@10", "sampled-100", "valid")] = result.valid.metrics["NDCG@10"]
        if "test" in spec.phases:
            row["test_input"] = how
            results, seconds = evaluate_protocols(tested, split, "test", tuple(spec.ks), self.feats, spec.protocols)
            row.update(result_columns(results, seconds))
            result.results, result.tested = results, tested
            result.per_user = _per_user_frame(results)
            full = results.get("full")
            if full is not None and full.recs is not None:
                order = np.argsort(full.users, kind="stable")  # sorted, for lookups by user
                result.top10 = (full.users[order].astype(np.int64), full.recs[order, :10].astype(np.int64))
        if folder is not None:
            self._write(folder, result, tested, split, key, how, report.train_log)
        if keep:
            self.fitted[spec.name] = model
        return result

    # -- the test model ---------------------------------------------------------------------------------------
    def test_model(self, spec: RunSpec, fitted: Recommender, split: Split, context: RunContext
                   ) -> tuple[Recommender, str]:
        """The model the test reads and how it was made: "history" (the fitted model reading training +
        validation), "parts" (a hybrid of its parts' test models), "refit" (fitted again on training +
        validation, choices held fixed) or "train" (a split with nothing to add: cold-items, vae-cf)."""
        inputs = split.test_input()
        if inputs is split.train:
            return fitted, "train"
        if not spec.refit and fitted.scores_history_exactly():
            return fitted.with_history(inputs), "history"
        if not spec.refit and fitted.parts():
            parts = [self._part_test_model(part, split, context) for part in fitted.parts()]
            return fitted.with_parts(*parts), "parts"
        return self._refit(spec.settings, fitted, split, context), "refit"

    def _part_test_model(self, part: Recommender, split: Split, context: RunContext) -> Recommender:
        if part.scores_history_exactly():
            return part.with_history(split.test_input())
        return self._refit(part.config_dict(), part, split, context.for_part())

    def _refit(self, settings: dict[str, Any], fitted: Recommender, split: Split, context: RunContext
               ) -> Recommender:
        """``fitted`` refitted on training + validation with its choices fixed; a refit this session made
        already with exactly those settings is reused (a hybrid's part)."""
        fresh = refit_model(fitted, settings)
        seen = split.test_input().matrix()
        for m in self.tested:
            if type(m) is type(fresh) and m.config == fresh.config and same_training_pairs(m.seen_, seen):
                return m
        refit_context = dataclasses.replace(  # the epoch hook hears of the run's own fit only
            context, prefitted=list(self.tested), on_epoch_end=None,
            checkpoint_dir=self._refit_checkpoint if context.checkpoint_dir is not None else None)
        model, _ = refit_with_choices(fitted, settings, split, self.dataset.catalog, refit_context)
        self.tested.append(model)
        return model

    # -- persistence ------------------------------------------------------------------------------------------
    def _write(self, folder: RunFolder, result: RunResult, model: Recommender, split: Split, key: dict[str, Any],
               how: str, train_log: list[dict[str, Any]]) -> None:
        """The run's folder in one atomic rename: bundle (when kept), tables, result.json; then its checkpoints
        go."""
        ds = self.dataset
        fit_on = {"history": "train", "parts": "train", "refit": "train+valid", "train": "train", "all": "all"}[how]
        info = {"name": ds.name, "source": ds.source, "fingerprint": ds.fingerprint(), **split.summary(),
                "rating_scale": ds.rating_scale(), "fit_on": fit_on,
                "input": "all" if how == "all" else TEST_INPUT if how != "train" else "train"}
        if how == "all":
            info["final"] = True
        metrics: dict[str, Any] = {"fit_seconds": result.row.get("fit_seconds")}
        if result.valid is not None:
            metrics["valid"] = {"sampled-100": result.valid.metrics}
        if result.results:
            metrics["test"] = {p: r.metrics for p, r in result.results.items()}
        if result.like_metrics:  # a final model: the test figures of the run it was made like
            metrics["test"], metrics["test_of"] = result.like_metrics, result.row.get("like")
        keep_bundle = self.save_models or folder.bundle_at_root or how == "all"
        writer = bundle_writer(model, ds.users, ds.items, ds.catalog, info, metrics, train_log,
                               choices=result.choices) if keep_bundle else None
        meta = {"name": result.name, "model_class": result.model, "family": result.family,
                "settings": result.settings, "choices": result.choices, "phases": list(result.spec.phases),
                "key": key, "key_hash": key_hash(key), "row": result.row}

        def write(tmp):
            if writer is not None:
                writer(tmp if folder.bundle_at_root else tmp / "model")
            if folder.bundle_at_root and how != "all":
                split.save(tmp / "split")
            write_tables(tmp, result.per_user, result.top10)
            (tmp / "result.json").write_text(json_dumps(meta))

        atomic_write_dir(folder.path, write)
        for ckpt in (folder.checkpoint, folder.refit_checkpoint):
            if ckpt is not None:
                shutil.rmtree(ckpt, ignore_errors=True)

    def _reused(self, spec: RunSpec, folder: RunFolder) -> RunResult:
        meta, per_user, top10 = read_stored(folder)
        return RunResult(spec, meta["row"], per_user, top10, meta.get("choices", {}), note=REUSED, folder=folder)

    def forget(self, result: RunResult) -> None:
        """Drop a run's models from the session and the result (no later run needs them): frees their memory."""
        self.fitted.pop(result.name, None)
        self.tested = [m for m in self.tested if m is not result.tested]
        result.fitted = result.tested = None


def _per_user_frame(results: dict[str, EvalResult]) -> pd.DataFrame:
    frames = []
    for protocol, res in results.items():
        cols = {column(m, protocol): res.per_user[m] for m in PER_USER if m in res.per_user}
        frames.append(pd.DataFrame(cols, index=pd.Index(res.users.astype(np.int64), name="user")))
    return pd.concat(frames, axis=1) if frames else pd.DataFrame(index=pd.Index([], name="user"))


def execute(spec: RunSpec, dataset: Dataset, split: Split | None = None, folder: RunFolder | None = None,
            **options: Any) -> RunResult:
    """One run in a session of its own (see :meth:`Session.execute`)."""
    return Session(dataset, split).execute(spec, folder, **options)


def read_result(folder: RunFolder) -> dict[str, Any]:
    """The result.json of a finished run."""
    return json.loads(folder.result_file.read_text())
