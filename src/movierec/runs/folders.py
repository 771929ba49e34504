"""``movierec train``'s run folder: the bundle of the model the test reads, at the folder's root (so the folder is
servable as it is), its ``split/``, and the run's result (:mod:`movierec.runs.store`). A final run's folder
holds a model fitted on every interaction and no split.

This is the Python API behind ``movierec train``, ``evaluate``, ``recommend`` and ``compare``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from movierec.artifacts import Bundle, load_bundle, write_metrics
from movierec.data.dataset import Dataset
from movierec.data.splits import Split
from movierec.errors import DataError, MovieRecError
from movierec.evaluation import DEFAULT_KS, PROTOCOLS, EvalResult, evaluate
from movierec.fsutil import claim_output, locked, output_kind, read_json, read_toml
from movierec.models import get_model_class, validate_settings
from movierec.models.settings import parse_pairs
from movierec.runs.engine import RunResult, Session
from movierec.runs.spec import HARDWARE_KEYS, RunSpec, check_run_tables, split_hardware, validate_config
from movierec.runs.store import RunFolder

__all__ = ["check_cutoffs", "check_device", "claim_run", "compare", "evaluate_run", "like_settings", "load_run",
           "parse_overrides", "settings_from_config", "train_run"]


def parse_overrides(model_name: str, pairs: list[str], config: Path | None = None,
                    like: dict[str, Any] | None = None) -> dict[str, Any]:
    """``["k=50", "shrink=10"]`` -> settings of model ``model_name``, checked for names, types and ranges. With
    ``config`` (a TOML file: ``best.toml`` of ``movierec tune``, an experiment or study config), the settings of
    its one ``[[run]]`` of that model come first (or its top-level keys when it has no runs); with ``like``
    (:func:`like_settings`), an earlier run's settings and choices come first; ``--set`` wins. The run's
    hardware keys (:data:`movierec.runs.spec.HARDWARE_KEYS`) are checked and kept beside the settings."""
    def check(values: dict[str, Any], where: str, cross: bool = True) -> dict[str, Any]:
        settings, hardware = split_hardware(values, where)
        return {**validate_settings(model_name, settings, where, cross=cross), **hardware}

    where = f"{model_name} --set"
    if config is None and like is None:
        return check(parse_pairs(pairs, where), where)
    base = dict(like or {})
    if config is not None:
        base.update(check(settings_from_config(config, model_name), str(config), cross=False))
    sets = check(parse_pairs(pairs, where), where, cross=False)
    source = f" --config {config}" if config is not None else " --like"
    return check({**base, **sets}, f"{model_name}{source} --set")


def settings_from_config(path: Path, model_name: str) -> dict[str, Any]:
    """The settings for ``model_name`` in TOML file ``path``: its single ``[[run]]`` of that model (name, model
    and label dropped) over the ``[defaults]`` that model has, or its top-level keys when it has no ``[[run]]``
    tables. An experiment or study config is checked whole first. A one-line error for anything it would
    otherwise ignore: a section it does not read, a ``run`` that is not ``[[run]]`` tables, a model that is not
    a name, no run (or several) of this model."""
    doc = read_toml(path)
    for kind in ("study", "experiment"):
        if kind in doc:
            validate_config(doc, kind, str(path))
    runs = doc.get("run")
    if runs is None:
        tables = [k for k, v in doc.items() if isinstance(v, dict | list)]
        if tables:
            raise MovieRecError(f"{path}: [{tables[0]}] is not read by train --config: give {model_name}'s settings "
                                f"as top-level keys, or in one [[run]] table with model = {model_name!r}")
        return dict(doc)
    check_run_tables(runs, str(path))
    unread = [k for k in doc if k not in ("run", "defaults", "grid", "study", "experiment", "segments")]
    if unread:
        raise MovieRecError(f"{path}: {unread[0]} is not read by train --config (beside [[run]] tables it reads "
                            "[defaults])")
    mine = [r for r in runs if r["model"] == model_name]
    if len(mine) != 1:
        names = ", ".join(repr(r.get("name", r.get("model"))) for r in mine) or "none"
        raise MovieRecError(f"{path}: expected one [[run]] with model = {model_name!r}, found {len(mine)} ({names})")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise MovieRecError(f"{path}: [defaults] must be a table of settings, not {defaults!r}")
    fields = set(get_model_class(model_name).config_class.names()) | set(HARDWARE_KEYS)
    return {**{k: v for k, v in defaults.items() if k in fields},
            **{k: v for k, v in mine[0].items() if k not in ("name", "model", "label")}}


def like_settings(path: Path, model_name: str) -> dict[str, Any]:
    """The settings an earlier run of ``model_name`` was trained with, its validation choices written in (best
    epoch, λ, blend weights: what ``movierec train --final --like RUN`` trains with). ``path``: a run folder,
    a bundle, or a study's run folder (``runs/<name>``, its bundle under ``model/``)."""
    path = Path(path).expanduser()
    bundle = path if (path / "config.json").is_file() else path / "model"
    if not (bundle / "config.json").is_file():
        raise MovieRecError(f"--like {path}: not a run folder or model bundle (no config.json)")
    config = read_json(bundle / "config.json")
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise DataError("not a movierec bundle's config", bundle / "config.json")
    if config.get("model") != model_name:
        raise MovieRecError(f"--like {path}: a run of {config.get('model')}, not of {model_name}")
    choices = config.get("choices")
    if choices is None:
        raise MovieRecError(f"--like {path}: the run recorded no validation choices (trained by an older movierec); "
                            "train it again, or give the settings with --set / --config")
    names = set(get_model_class(model_name).config_class.names())  # a setting an older version had is left out
    return validate_settings(model_name, {k: v for k, v in {**config["config"], **choices}.items() if k in names},
                             f"--like {path}")


def check_device(device: str) -> None:
    """Refuse a device torch would not parse or does not have, with one line and before any data is split
    (the trainer's own check, :func:`movierec.training.resolve_device`, run early)."""
    from movierec.training import resolve_device

    try:
        resolve_device(device)
    except MovieRecError as e:
        raise MovieRecError(f"--{e}") from None


def run_folder(out: str | Path) -> RunFolder:
    """``movierec train --out OUT``'s folder: the bundle at OUT, its checkpoints ``OUT.ckpt`` and ``OUT.refit.ckpt``."""
    return RunFolder(Path(out), bundle_at_root=True, checkpoint=Path(f"{out}.ckpt"))


def claim_run(out: str | Path, *, resume: bool = False, force: bool = False, lock: bool = True) -> Path:
    """Check, before any work, that ``movierec train`` may write run folder ``out`` and its checkpoints; the
    process then holds the lock on ``out`` (:func:`movierec.fsutil.claim_output`; ``lock=False`` for a
    data-parallel run's workers, whose launcher holds it).

    A finished run is replaced only with ``force``; ``resume`` continues an interrupted run, never replaces a
    finished one. A checkpoint there (an interrupted run's) is resumed with ``resume`` (the engine then checks
    that it is this run's: :func:`movierec.runs.store.check_checkpoints`) or discarded with ``force``; without
    either it is refused. A checkpoint path that holds anything movierec did not write (a file, a link, a folder
    of the user's) is refused, with ``force`` too: it is never deleted.
    """
    from movierec.training.checkpoint import checkpoint_meta

    out = Path(out)
    if resume and not force and output_kind(out) == "run":
        raise MovieRecError(f"--out {out}: a finished run is there; --resume continues an interrupted run (from "
                            f"{out}.ckpt), it does not replace a finished one (--force does)")
    claim_output(out, "run", force=force, lock=lock)
    for ckpt in (run_folder(out).checkpoint, run_folder(out).refit_checkpoint):
        if not (ckpt.exists() or ckpt.is_symlink()):
            continue
        meta = checkpoint_meta(ckpt)
        if meta is None:
            raise MovieRecError(f"--out {out}: {ckpt} is where this run keeps its checkpoints, and it holds "
                                "something movierec did not write; move it, or choose another --out")
        if not (resume or force):
            raise MovieRecError(f"--out {out}: {ckpt} holds an interrupted run's checkpoint (after epoch "
                                f"{meta['epoch']}); --resume continues it (same model, settings and data), --force "
                                "discards it")
    return out


def train_run(model_name: str, dataset: Dataset, out: str | Path | None, overrides: dict[str, Any] | None = None,
              protocol: str = "loo", seed: int = 42, split: Split | None = None, resume: bool = False,
              progress: bool = False, device: str = "auto",
              on_fit_start: Callable[[Split], None] | None = None,
              on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
              rank: int = 0, world_size: int = 1, refit: bool = True, final: bool = False,
              ks: tuple[int, ...] = DEFAULT_KS) -> tuple[RunResult, Split]:
    """One run of ``model_name`` (the engine, :class:`movierec.runs.Session`), kept as a run folder at ``out``.

    Fit on the split's training part with the validation part for the model's choices, score the validation
    part, then the test part from everything before each test item: a refit on training + validation with
    the choices held fixed (``refit``, the default; without it only models with per-user parameters are
    refitted and the others read training + validation as a history). The folder's bundle is the model the
    test read. ``final``: fit on every interaction instead, nothing held out (``overrides`` should
    carry an evaluated run's choices: :func:`like_settings`).

    Models trained in epochs checkpoint into ``OUT.ckpt/`` after every epoch; with ``resume`` an interrupted
    run continues from there (removed once the folder is written). In a data-parallel run (``world_size`` >
    1, the process group joined) every rank trains; rank 0 alone validates, tests and writes. Progress:
    ``on_fit_start(split)`` once the split is made, ``on_epoch_end(record)`` after every epoch (the one that
    stops training early included); neither stops anything.
    """
    check_device(device)
    name = model_name
    phases = ("final",) if final else ("fit", "validate", "test")
    settings, hardware = split_hardware(dict(overrides or {}), f"{model_name} settings")
    spec = RunSpec(name, model_name, settings, protocol, seed, PROTOCOLS, tuple(ks), phases, refit, hardware)
    session = Session(dataset, split, reuse=False)  # train always trains (its --out is claimed, or --force)
    run_split = session.split_for(spec)
    if on_fit_start is not None:
        on_fit_start(run_split)
    folder = None
    if out is not None:
        folder = run_folder(out)
    hook = (lambda record: on_epoch_end(record) and None) if on_epoch_end is not None else None
    result = session.execute(spec, folder, device=device, progress=progress, on_epoch_end=hook, resume=resume,
                             rank=rank, world_size=world_size, keep=False, where=f"{model_name} --set")
    return result, run_split


def load_run(run_dir: str | Path) -> tuple[Bundle, Split]:
    """A run folder's bundle and split; DataError naming the file when either is missing or damaged."""
    bundle = load_bundle(run_dir)
    if bundle.config.get("dataset", {}).get("final"):
        raise MovieRecError(f"{run_dir}: a final model, trained on every interaction: nothing was held out to "
                            "evaluate it on (its settings were evaluated in the run it was made like)")
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


def test_reader(bundle: Bundle, split: Split, run_dir: str | Path):
    """The model that reads each user's test input (training + validation) from a run folder's bundle: the
    bundle's own model when it records that input (``input`` in its config.json); an older bundle of a model that scores
    histories exactly reads it as a history; an older bundle of any other model is refused in one line."""
    model = bundle.model
    if bundle.config.get("dataset", {}).get("input") is not None or split.test_input() is split.train:
        return model
    if model.scores_history_exactly():
        return model.with_history(split.test_input())
    raise MovieRecError(f"{run_dir}: trained by an older movierec, whose test input lacks the validation "
                        "interaction; train the run again to evaluate it")


def evaluate_run(run_dir: str | Path, protocol: str = "full", ks: tuple[int, ...] = DEFAULT_KS,
                 part: str = "test") -> EvalResult:
    """Evaluate a run folder's model on its own split's test part (each user read from everything before the
    test item) and record the result in its metrics.json."""

    if protocol not in PROTOCOLS:
        raise MovieRecError(f"unknown protocol {protocol!r} (expected one of: {', '.join(PROTOCOLS)})")
    bundle, split = load_run(run_dir)
    if part != "test":
        raise MovieRecError(f"{run_dir}: its model reads the validation part; its validation figures were recorded "
                            "in metrics.json when it was trained")
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
    result = evaluate(test_reader(bundle, split, run_dir), split, protocol, part, ks, bundle.genre_features())
    with locked(metrics_path):  # read again under the lock: a parallel evaluate of the run keeps its figures
        if metrics_path.exists():
            saved = read_json(metrics_path, "; remove it to start afresh")
        saved.setdefault(part, {})[protocol] = result.metrics
        write_metrics(run_dir, saved)
    return result


def compare(dataset: Dataset, model_names: list[str], ks: tuple[int, ...] = DEFAULT_KS,
            split: Split | None = None, progress: Callable[[str, str, int, int], None] | None = None,
            on_epoch_end: Callable[[str], Callable[[dict[str, Any]], None] | None] | None = None,
            refit: bool = True) -> list[dict]:
    """Run each model (default settings) on one leave-one-out split (:class:`movierec.runs.Session`: hybrids
    reuse the models fitted before them) and evaluate it under both protocols. One row per model.

    Progress: ``progress(step, name, k, n)`` is called before model ``name`` (the k-th of n) is fitted (step
    "fitting") and when it is done ("done"); ``on_epoch_end(name)`` may give a per-epoch callback for that
    model's fit (see :func:`train_run`)."""
    session = Session(dataset, split)
    rows = []
    n = len(model_names)
    for k, name in enumerate(model_names, 1):
        if progress is not None:
            progress("fitting", name, k, n)
        hook = on_epoch_end(name) if on_epoch_end is not None else None
        spec = RunSpec(name, name, {}, ks=tuple(ks), refit=refit)
        result = session.execute(spec, on_epoch_end=(lambda r, h=hook: h(r) and None) if hook else None)
        rows.append({k2: v for k2, v in result.row.items() if k2 != "family"})
        if progress is not None:
            progress("done", name, k, n)
    return rows


def result_of(run_dir: str | Path) -> dict[str, Any]:
    """The result.json of a run folder (empty for folders of older versions)."""
    path = Path(run_dir) / "result.json"
    return json.loads(path.read_text()) if path.is_file() else {}
