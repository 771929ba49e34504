"""Experiment configs (TOML): a grid of models trained on one split and compared under both protocols.

    [experiment]
    name = "ncf-paper"
    split = "loo"          # or a dataset's predefined split (NCF files) when it has one
    seed = 42
    ks = [10]

    [defaults]             # settings applied to every run (and hybrid part) that has them (e.g. epochs)
    epochs = 20

    [[run]]                # one run; list values are NOT expanded here
    name = "mlp3-e8"
    model = "mlp"
    embedding_dim = 8

    [[grid]]               # the cartesian product of every list value; names are generated
    model = "neumf"
    factors = [8, 16, 32, 64]
    pretrain = [false, true]

Finished runs are saved as ``runs/NAME.json`` under the output folder together with the key of what the
result depends on (:func:`run_key`: the dataset's content fingerprint, the model's complete settings, the
split, the cutoffs and the movierec version). Started again into the same folder, an experiment reuses a
run only when its stored key matches exactly; otherwise it retrains the run, replaces its file and says
why (:func:`stale_reason`). ``results.csv``/``results.md``/``results.json`` hold the table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from movierec import __version__
from movierec.comparison import write_comparison
from movierec.data.dataset import Dataset
from movierec.data.splits import Split, make_split
from movierec.errors import MovieRecError
from movierec.fitting import fit_model
from movierec.fsutil import atomic_write_text, read_toml
from movierec.models import ENTRIES, RunContext, build_model, get_model_class, validate_settings
from movierec.models.settings import unknown_key_error
from movierec.run_folders import evaluate_test, item_genre_features, protocol_columns

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

_RESERVED = {"name", "model", "label"}


@dataclasses.dataclass
class RunSpec:
    name: str
    model: str
    settings: dict[str, Any]


def load_config(path: str | Path) -> dict[str, Any]:
    return read_toml(path)


_SPLITS = Literal["loo", "vae-cf", "cold-items"]


class _ExperimentSection(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str | None = None
    split: _SPLITS = "loo"
    seed: int = pydantic.Field(42, ge=0)
    ks: list[Annotated[int, pydantic.Field(ge=1)]] = pydantic.Field([10], min_length=1)


class _StudySection(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    split: _SPLITS = "loo"
    seed: int = pydantic.Field(42, ge=0)
    examples: int = pydantic.Field(3, ge=0)
    similar: str | None = None
    save_models: bool = True
    eda_sample: int = pydantic.Field(1_000_000, ge=1)


_SECTIONS = {"experiment": {"experiment": _ExperimentSection, "defaults": None, "run": None, "grid": None},
             "study": {"study": _StudySection, "segments": None, "defaults": None, "run": None, "grid": None}}


def validate_config(config: dict[str, Any], kind: str, where: str = "config") -> None:
    """Check a study or experiment TOML before any work: known sections, the [study]/[experiment] keys'
    types and ranges, every [[run]]/[[grid]] naming a model, and every model setting (see :func:`expand_runs`).
    Errors are one line naming the section and key, with the closest valid name for a misspelling."""
    sections = _SECTIONS[kind]
    for name, value in config.items():
        if name not in sections:
            raise unknown_key_error(where, name, sections, "section")
        schema = sections[name]
        if schema is None:
            continue
        if not isinstance(value, dict):
            raise MovieRecError(f"{where}: [{name}] must be a table of settings")
        for key in value:
            if key not in schema.model_fields:
                raise unknown_key_error(f"{where} [{name}]", key, schema.model_fields)
        try:
            schema.model_validate(value)
        except pydantic.ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise MovieRecError(f"{where} [{name}]: {key} = {err.get('input')!r} is invalid: "
                                f"{err['msg'].lower()}") from None
    for table in ("run", "grid"):
        entries = config.get(table, [])
        if not isinstance(entries, list):
            raise MovieRecError(f"{where}: [{table}] must be written [[{table}]] (one table per {table})")
        for n, entry in enumerate(entries, 1):
            if "model" not in entry:
                raise MovieRecError(f"{where}: [[{table}]] number {n} ({entry.get('name', 'unnamed')!r}) names no "
                                    "model")
    expand_runs(config)


def _label(model: str, settings: dict[str, Any]) -> str:
    parts = [model] + [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()]
    return " ".join(parts)


def expand_runs(config: dict[str, Any]) -> list[RunSpec]:
    """The config's runs in order: every [[run]], then every [[grid]] expanded; defaults applied."""
    defaults = config.get("defaults", {})
    specs: list[RunSpec] = []
    for entry in config.get("run", []):
        settings = {k: v for k, v in entry.items() if k not in _RESERVED}
        specs.append(RunSpec(entry.get("name") or _label(entry["model"], settings), entry["model"], settings))
    for entry in config.get("grid", []):
        keys = [k for k in entry if k not in _RESERVED]
        values = [v if isinstance(v, list) else [v] for v in (entry[k] for k in keys)]
        for combo in itertools.product(*values):
            settings = dict(zip(keys, combo, strict=True))
            prefix = entry.get("name")
            name = f"{prefix} {_label('', settings).strip()}" if prefix else _label(entry["model"], settings)
            specs.append(RunSpec(name, entry["model"], settings))
    known_defaults: set[str] = set()
    out = []
    for spec in specs:
        cls = get_model_class(spec.model)
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        known_defaults |= fields
        merged = {k: v for k, v in defaults.items() if k in fields}
        merged.update(spec.settings)
        for part, part_settings in (("a", "a_settings"), ("b", "b_settings")):  # a hybrid's parts get them too
            if part_settings in fields:
                name = merged.get(part, getattr(cls.config_class(), part))
                part_fields = {f.name for f in dataclasses.fields(get_model_class(name).config_class)}
                known_defaults |= part_fields
                merged[part_settings] = {**{k: v for k, v in defaults.items() if k in part_fields},
                                         **merged.get(part_settings, {})}
        out.append(RunSpec(spec.name, spec.model, validate_settings(spec.model, merged, f"run {spec.name!r}")))
    for key in defaults:  # a default no model of this config has may still be a misspelling
        if key not in known_defaults and key not in _all_settings():
            raise unknown_key_error("[defaults]", key, sorted(_all_settings()), "setting (of any model)")
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise MovieRecError("two runs have the same name; give [[run]] entries distinct names")
    return out


def _all_settings() -> set[str]:
    return {f.name for e in ENTRIES for f in dataclasses.fields(e.load().config_class)}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# -- reuse: what a stored result depends on ---------------------------------------------------------------
KEY_FORMAT = 2
"""The layout of the keys below; a stored key of another layout (or none) is never reused."""

REUSED = "reused (same data, settings, split and version)"
"""What is said of a run whose stored result was reused."""


def resolved_settings(model: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The model's complete configuration for ``settings``: ``dataclasses.asdict`` of the built model's config,
    so every default counts too (a default changed in a new version changes the key). A hybrid's part
    settings (``a_settings``, ``b_settings``) are expanded to their parts' complete configurations."""
    config = dataclasses.asdict(build_model(model, settings).config)
    for part in ("a", "b"):
        if f"{part}_settings" in config and isinstance(config.get(part), str):
            config[f"{part}_settings"] = resolved_settings(config[part], config[f"{part}_settings"])
    return config


def data_key(dataset: Dataset, split: Split) -> dict[str, Any]:
    """What every result on ``split`` of ``dataset`` depends on besides its model: the dataset's name and content
    fingerprint (:meth:`Dataset.fingerprint`, not its path or sizes), the split (its summary: protocol, seed,
    part sizes) and the movierec version."""
    return {"format": KEY_FORMAT, "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint()},
            "split": split.summary(), "version": __version__}


def run_key(spec: RunSpec, base: dict[str, Any], ks: tuple[int, ...] | list[int] | None = None) -> dict[str, Any]:
    """A finished run is reused only when this key matches exactly: its name, model and complete settings
    (:func:`resolved_settings`), the cutoffs ``ks`` it was evaluated at (where given), and ``base``
    (:func:`data_key`: data, split, version)."""
    key: dict[str, Any] = {"name": spec.name, "model": spec.model, "config": resolved_settings(spec.model,
                                                                                              spec.settings)}
    if ks is not None:
        key["ks"] = [int(k) for k in ks]
    return {**key, **base}


def _canonical(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, numpy numbers their str), for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def key_hash(key: dict[str, Any]) -> str:
    """A short hash of a key (12 hex characters), stable across processes."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in sorted(set(old) | set(new), key=str)
                for p in _changed_paths(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


def stale_reason(stored: dict[str, Any] | None, key: dict[str, Any]) -> str:
    """Why a result stored under key ``stored`` is not reused for ``key``: "" when they match, else a phrase
    such as "the data changed since the stored result", "settings changed (lr)" or "version changed
    (0.1.0 -> 0.2.0)" (several joined with "; ")."""
    if not isinstance(stored, dict) or stored.get("format") != KEY_FORMAT:
        return "it was stored without this version's key (data fingerprint, settings, split, version)"
    old, new = _canonical(stored), _canonical(key)
    if old == new:
        return ""
    reasons = []
    if old.get("version") != new.get("version"):
        reasons.append(f"version changed ({old.get('version')} -> {new.get('version')})")
    data_changed = old.get("dataset") != new.get("dataset")
    if data_changed:
        o, n = old.get("dataset") or {}, new.get("dataset") or {}
        reasons.append("the data changed since the stored result" if o.get("fingerprint") != n.get("fingerprint")
                       else f"the dataset's name changed ({o.get('name')} -> {n.get('name')})")
    split_changes = _changed_paths(old.get("split"), new.get("split"))
    if data_changed:  # other data splits into other parts: only a changed protocol or seed is news
        split_changes = [p for p in split_changes if p in ("protocol", "seed")]
    if split_changes:
        reasons.append(f"the split changed ({', '.join(split_changes)})")
    if old.get("model") != new.get("model"):
        reasons.append(f"the model changed ({old.get('model')} -> {new.get('model')})")
    elif old.get("config") != new.get("config"):
        reasons.append(f"settings changed ({', '.join(_changed_paths(old.get('config'), new.get('config')))})")
    if old.get("ks") != new.get("ks"):
        reasons.append(f"the cutoffs changed (ks {old.get('ks')} -> {new.get('ks')})")
    known = {"format", "version", "dataset", "split", "model", "config", "ks"}
    reasons += [f"{k} changed" for k in sorted(set(old) | set(new)) if k not in known and old.get(k) != new.get(k)]
    return "; ".join(reasons)


def _stored_key(path: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(key, row) of a stored run file; (None, None) when it is absent or unreadable, (None, row) for the
    files of older versions (the bare row, no key)."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None
    if not isinstance(stored, dict):
        return None, None
    if "key" in stored and "row" in stored:
        return stored["key"], stored["row"]
    return None, stored


class _EpochHook:
    """``hook`` as a ``RunContext.on_epoch_end`` whose result is ignored (a progress printer never stops a fit);
    :meth:`finish` passes on the last epoch when the trainer stopped early before calling the hook for it."""

    def __init__(self, hook: Callable[[dict[str, Any]], Any]) -> None:
        self.hook, self.last = hook, 0

    def __call__(self, record: dict[str, Any]) -> None:
        self.last = max(self.last, record.get("epoch", 0))
        self.hook(record)

    def finish(self, log: list[dict[str, Any]]) -> None:
        if log and log[-1].get("epoch", 0) > self.last:
            self.hook(log[-1])


def run_experiment(
    config: dict[str, Any],
    dataset: Dataset,
    out: str | Path,
    progress: Callable[[str, dict, str], None] | None = None,
    train_progress: bool = False,
    on_run_start: Callable[[RunSpec], None] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict]:
    """Train and evaluate every run of ``config`` on one split of ``dataset``; write the results table.

    A run whose ``runs/NAME.json`` holds exactly this run's key (:func:`run_key`: data fingerprint, complete
    settings, split, ``ks``, version) is reused; any other stored result is retrained and its file replaced.
    ``progress(name, row, note)`` is called after each run; ``note`` says what happened: "trained",
    :data:`REUSED`, or "retrained: " and the :func:`stale_reason`. ``experiment.json`` records the reused runs
    and why the others were retrained. ``on_run_start(spec)`` is called before a run is trained (not for a
    reused one) and ``on_epoch_end(record)`` after each epoch of a model trained in epochs (its result is
    ignored: progress never stops training).
    """
    validate_config(config, "experiment")
    exp = config.get("experiment", {})
    ks = tuple(exp.get("ks", [10]))
    seed = int(exp.get("seed", 42))
    split = make_split(dataset, exp.get("split", "loo"), seed)
    feats = item_genre_features(dataset)
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    base = data_key(dataset, split)
    rows = []
    reused: list[str] = []
    retrained: dict[str, str] = {}
    for spec in expand_runs(config):
        done = out / "runs" / f"{_slug(spec.name)}.json"
        key = run_key(spec, base, ks)
        note = "trained"
        if done.exists():
            stored, stored_row = _stored_key(done)
            reason = stale_reason(stored, key)
            if not reason and stored_row is not None:
                row = {**stored_row, "settings": spec.settings}  # the settings as written now (same config)
                rows.append(row)
                reused.append(spec.name)
                if progress:
                    progress(spec.name, row, REUSED)
                continue
            retrained[spec.name] = reason
            note = f"retrained: {reason}"
            done.unlink(missing_ok=True)  # from here on no stale result stands for this run
        if on_run_start is not None:
            on_run_start(spec)
        epoch_hook = _EpochHook(on_epoch_end) if on_epoch_end is not None else None
        model, report = fit_model(spec.model, spec.settings, split, dataset.catalog,
                                  RunContext(progress=train_progress, on_epoch_end=epoch_hook), f"run {spec.name!r}")
        if epoch_hook is not None:
            epoch_hook.finish(report.train_log)
        row = {"model": spec.name, "model_class": spec.model, "settings": spec.settings,
               "fit_seconds": round(report.seconds, 2)}
        if report.epochs:
            row.update(best_epoch=report.best_epoch, epochs_run=report.epochs,
                       samples_per_s=round(report.samples_per_s))
        row.update(protocol_columns(evaluate_test(model, split, ks, feats)[0]))
        atomic_write_text(done, json.dumps({"key": key, "key_hash": key_hash(key), "row": row}, indent=2,
                                           default=str))
        rows.append(row)
        if progress:
            progress(spec.name, row, note)
    write_comparison([{k: v for k, v in r.items() if k != "settings"} for r in rows], out)
    atomic_write_text(out / "experiment.json", json.dumps({"config": config, "dataset": dataset.info(),
                                                           "fingerprint": dataset.fingerprint(),
                                                           "split": split.summary(), "reused": reused,
                                                           "retrained": retrained}, indent=2, default=str))
    return rows
