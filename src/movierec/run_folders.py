"""Training runs: a run folder is a model bundle plus the split it was trained on (``split/``).

This is the Python API behind ``movierec train``, ``evaluate``, ``recommend`` and ``compare``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from movierec.artifacts import Bundle, load_bundle, save_bundle, write_metrics
from movierec.data.dataset import Dataset
from movierec.data.splits import Split, make_split
from movierec.errors import DataError, MovieRecError
from movierec.evaluation import DEFAULT_KS, EvalResult, evaluate
from movierec.fitting import fit_model
from movierec.fsutil import read_json
from movierec.models import Recommender, RunContext, validate_settings
from movierec.models.settings import parse_pairs

PROTOCOLS = ("sampled-100", "full")


def parse_overrides(model_name: str, pairs: list[str], config: Path | None = None) -> dict[str, Any]:
    """``["k=50", "shrink=10"]`` -> settings of model ``model_name``, checked for names, types and ranges. With
    ``config`` (a TOML file: ``best.toml`` of ``movierec tune``, an experiment or study config), the settings of
    its one ``[[run]]`` of that model come first (or its top-level keys when it has no runs); ``--set`` wins."""
    where = f"{model_name} --set"
    if config is None:
        return validate_settings(model_name, parse_pairs(pairs, where), where)
    base = validate_settings(model_name, settings_from_config(config, model_name), str(config), cross=False)
    sets = validate_settings(model_name, parse_pairs(pairs, where), where, cross=False)
    return validate_settings(model_name, {**base, **sets}, f"{model_name} --config {config} --set")


def settings_from_config(path: Path, model_name: str) -> dict[str, Any]:
    """The settings for ``model_name`` in TOML file ``path``: its single ``[[run]]`` of that model (name, model
    and label dropped), or its top-level keys when it has no ``[[run]]`` tables; a one-line error otherwise."""
    from movierec.fsutil import read_toml

    doc = read_toml(path)
    runs = doc.get("run")
    if runs is None:
        return {k: v for k, v in doc.items() if not isinstance(v, dict)}
    mine = [r for r in runs if isinstance(r, dict) and r.get("model") == model_name]
    if len(mine) != 1:
        names = ", ".join(repr(r.get("name", r.get("model"))) for r in mine) or "none"
        raise MovieRecError(f"{path}: expected one [[run]] with model = {model_name!r}, found {len(mine)} ({names})")
    return {k: v for k, v in mine[0].items() if k not in ("name", "model", "label")}




def check_device(device: str) -> None:
    """Refuse a device torch would not parse or does not have, with one line and before any data is split
    (the trainer's own check, :func:`movierec.training.resolve_device`, run early)."""
    from movierec.training import resolve_device

    try:
        resolve_device(device)
    except MovieRecError as e:
        raise MovieRecError(f"--{e}") from None


def item_genre_features(dataset_or_bundle: Dataset | Bundle) -> np.ndarray | None:
    """Genre multi-hot [n_items, n_genres] in item-index order, for intra-list diversity."""
    if isinstance(dataset_or_bundle, Bundle):
        from movierec.similar import catalog_from_bundle

        catalog = catalog_from_bundle(dataset_or_bundle)
    else:
        catalog = dataset_or_bundle.catalog
    if catalog is None:
        return None
    feats, names = catalog.genre_matrix(dataset_or_bundle.items.ids)
    return feats if names else None


def train_run(model_name: str, dataset: Dataset, out: str | Path | None, overrides: dict[str, Any] | None = None,
              protocol: str = "loo", seed: int = 42, split: Split | None = None, resume: bool = False,
              progress: bool = False, device: str = "auto",
              on_fit_start: Callable[[Split], None] | None = None,
              on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
              rank: int = 0, world_size: int = 1) -> tuple[Recommender, Split, dict]:
    """Split ``dataset``, fit the model on train, score the validation part, and save a run folder.

    Models trained in epochs checkpoint into ``OUT.ckpt/`` after every epoch; with ``resume`` an
    interrupted run continues from there. The checkpoint is removed once the run folder is written.
    In a data-parallel run (``world_size`` > 1, the process group joined) every rank trains; rank 0 alone
    validates, checkpoints and writes the run folder (``info`` is empty on the other ranks).
    Progress: ``on_fit_start(split)`` is called once the split is made, ``on_epoch_end(record)`` after every
    epoch of a model trained in epochs (the epoch that stops training early included); neither stops anything.
    """
    check_device(device)
    split = split or make_split(dataset, protocol, seed)
    if on_fit_start is not None:
        on_fit_start(split)
    ckpt = Path(f"{out}.ckpt") if out is not None else None
    seen: list[int] = []

    def epoch_end(record: dict[str, Any]) -> None:
        seen.append(record.get("epoch", 0))
        on_epoch_end(record)  # its result is ignored: progress never stops training

    context = RunContext(device=device, checkpoint_dir=ckpt, resume=resume, progress=progress,
                         on_epoch_end=epoch_end if on_epoch_end is not None else None, rank=rank,
                         world_size=world_size)
    model, report = fit_model(model_name, overrides, split, dataset.catalog, context)
    if rank != 0:
        return model, split, {}
    if on_epoch_end is not None and report.train_log and report.train_log[-1].get("epoch", 0) > max(seen, default=0):
        on_epoch_end(report.train_log[-1])  # the trainer stops early before calling the hook for that epoch
    info: dict[str, Any] = {"fit_seconds": report.seconds}
    if report.epochs:
        info.update(best_epoch=report.best_epoch, epochs_run=report.epochs, samples_per_s=report.samples_per_s)
    if split.valid is not None and split.valid.negatives is not None:
        info["valid"] = evaluate(model, split, "sampled-100", "valid", (10,)).to_json()
    if out is not None:
        dataset_info = {"name": dataset.name, "source": dataset.source, **split.summary(),
                        "rating_scale": rating_scale(dataset)}
        save_bundle(out, model, dataset.users, dataset.items, dataset.catalog, dataset_info,
                    metrics={"valid": {"sampled-100": info.get("valid", {}).get("metrics", {})},
                             "fit_seconds": report.seconds},
                    train_log=report.train_log,
                    extra=lambda tmp: split.save(tmp / "split"))
        if ckpt is not None and ckpt.exists():
            shutil.rmtree(ckpt, ignore_errors=True)
    return model, split, info


def rating_scale(dataset: Dataset) -> list[float]:
    """[lowest, highest] rating of the data (what a new person may give, when served)."""
    r = dataset.interactions.rating
    return [float(r.min()), float(r.max())] if len(r) else [1.0, 1.0]


def load_run(run_dir: str | Path) -> tuple[Bundle, Split]:
    """A run folder's bundle and split; DataError naming the file when either is missing or damaged."""
    bundle = load_bundle(run_dir)
    split_dir = Path(run_dir) / "split"
    if not split_dir.exists():
        raise MovieRecError(f"{run_dir}: no split/ folder (train the run with `movierec train`)")
    if not split_dir.is_dir():
        raise DataError("not a folder (a run's split/ is a folder)", split_dir)
    split = Split.load(split_dir)
    if (split.n_users, split.n_items) != (bundle.model.n_users, bundle.model.n_items):
        raise DataError(f"a split of {split.n_users} users and {split.n_items} movies, but the model has "
                        f"{bundle.model.n_users} and {bundle.model.n_items}: not the split this run was trained on",
                        split_dir)
    return bundle, split


def check_cutoffs(ks: tuple[int, ...], n_candidates: int, what: str) -> None:
    """Refuse cutoffs below 1 or above the number of items a list can hold (``what`` names that number)."""
    if not ks:
        raise MovieRecError("-k: give at least one cutoff")
    if min(ks) < 1:
        raise MovieRecError(f"-k {min(ks)}: must be at least 1")
    if max(ks) > n_candidates:
        raise MovieRecError(f"-k {max(ks)}: larger than the {n_candidates} {what}")


def evaluate_run(run_dir: str | Path, protocol: str = "full", ks: tuple[int, ...] = DEFAULT_KS,
                 part: str = "test") -> EvalResult:
    """Evaluate a run folder's model on its own split and record the result in its metrics.json."""

    if protocol not in PROTOCOLS:
        raise MovieRecError(f"unknown protocol {protocol!r} (expected one of: {', '.join(PROTOCOLS)})")
    bundle, split = load_run(run_dir)
    held = split.part(part)
    if protocol == "sampled-100":
        if held.negatives is None:
            raise MovieRecError(f"{run_dir}: its {split.protocol} split has no sampled negatives; use --protocol full")
        check_cutoffs(ks, held.negatives.shape[1] + 1, "candidates each user is ranked among under sampled-100")
    else:
        n = split.n_items if split.candidates is None else len(split.candidates)
        check_cutoffs(ks, n, "movies of the run's catalogue")
    metrics_path = Path(run_dir) / "metrics.json"
    saved: dict = {}
    if metrics_path.exists():
        saved = read_json(metrics_path, "; remove it to start afresh")
        if not isinstance(saved, dict) or not isinstance(saved.get(part, {}), dict):
            raise DataError("not a metrics table; remove it to start afresh", metrics_path)
    result = evaluate(bundle.model, split, protocol, part, ks, item_genre_features(bundle))
    saved.setdefault(part, {})[protocol] = result.metrics
    write_metrics(run_dir, saved)
    return result


def evaluate_test(model: Recommender, split: Split, ks: tuple[int, ...], feats: np.ndarray | None
                  ) -> tuple[dict[str, EvalResult], dict[str, float]]:
    """The test part under every protocol the split supports (sampled-100 needs its sampled negatives; the
    cold-item split has none). Returns the results and each protocol's evaluation time in seconds."""
    results: dict[str, EvalResult] = {}
    seconds: dict[str, float] = {}
    for protocol in PROTOCOLS:
        if protocol == "sampled-100" and split.test.negatives is None:
            continue
        t0 = time.perf_counter()
        results[protocol] = evaluate(model, split, protocol, "test", ks, feats)
        seconds[protocol] = time.perf_counter() - t0
    return results, seconds


def protocol_columns(results: dict[str, EvalResult], seconds: dict[str, float] | None = None) -> dict[str, float]:
    """Table columns named by protocol, e.g. ``NDCG@10 [full]``; with ``seconds`` each protocol's metrics are
    preceded by ``eval_seconds[protocol]``."""
    row: dict[str, float] = {}
    for protocol, res in results.items():
        if seconds is not None:
            row[f"eval_seconds[{protocol}]"] = round(seconds[protocol], 3)
        row.update({f"{k} [{protocol}]": v for k, v in res.metrics.items()})
    return row


def compare(dataset: Dataset, model_names: list[str], ks: tuple[int, ...] = DEFAULT_KS,
            split: Split | None = None, progress: Callable[[str, str, int, int], None] | None = None,
            on_epoch_end: Callable[[str], Callable[[dict[str, Any]], None] | None] | None = None) -> list[dict]:
    """Fit each model on one split and evaluate it under both protocols. One row per model.

    Progress: ``progress(step, name, k, n)`` is called before model ``name`` (the k-th of n) is fitted (step
    "fitting"), before it is evaluated ("evaluating") and when it is done ("done"); ``on_epoch_end(name)`` may
    give a per-epoch callback for that model's fit (see :func:`train_run`)."""
    split = split or make_split(dataset, "loo")
    feats = item_genre_features(dataset)
    rows = []
    n = len(model_names)
    for k, name in enumerate(model_names, 1):
        if progress is not None:
            progress("fitting", name, k, n)
        model, _, info = train_run(name, dataset, None, split=split,
                                   on_epoch_end=on_epoch_end(name) if on_epoch_end is not None else None)
        row: dict[str, Any] = {"model": name, "fit_seconds": round(info["fit_seconds"], 3)}
        if progress is not None:
            progress("evaluating", name, k, n)
        row.update(protocol_columns(*evaluate_test(model, split, ks, feats)))
        rows.append(row)
        if progress is not None:
            progress("done", name, k, n)
    return rows
