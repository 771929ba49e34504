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

Finished runs are saved as ``runs/NAME.json`` under the output folder, so an interrupted experiment,
started again, skips what is done. ``results.csv``/``results.md``/``results.json`` hold the table.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from movierec.comparison import write_comparison
from movierec.data.dataset import Dataset
from movierec.data.splits import make_split
from movierec.errors import MovieRecError
from movierec.fitting import fit_model
from movierec.fsutil import atomic_write_text
from movierec.models import ENTRIES, RunContext, get_model_class, validate_settings
from movierec.models.settings import unknown_key_error
from movierec.run_folders import evaluate_test, item_genre_features, protocol_columns

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_RESERVED = {"name", "model", "label"}


@dataclasses.dataclass
class RunSpec:
    name: str
    model: str
    settings: dict[str, Any]


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise MovieRecError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise MovieRecError(f"{path}: invalid TOML ({e})") from None


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


def run_experiment(
    config: dict[str, Any],
    dataset: Dataset,
    out: str | Path,
    progress: Callable[[str, dict], None] | None = None,
    train_progress: bool = False,
) -> list[dict]:
    """Train and evaluate every run of ``config`` on one split of ``dataset``; write the results table."""
    validate_config(config, "experiment")
    exp = config.get("experiment", {})
    ks = tuple(exp.get("ks", [10]))
    seed = int(exp.get("seed", 42))
    split = make_split(dataset, exp.get("split", "loo"), seed)
    feats = item_genre_features(dataset)
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in expand_runs(config):
        done = out / "runs" / f"{_slug(spec.name)}.json"
        if done.exists():
            rows.append(json.loads(done.read_text()))
            if progress:
                progress(spec.name, rows[-1])
            continue
        model, report = fit_model(spec.model, spec.settings, split, dataset.catalog,
                                  RunContext(progress=train_progress), f"run {spec.name!r}")
        row: dict[str, Any] = {"model": spec.name, "model_class": spec.model, "settings": spec.settings,
                               "fit_seconds": round(report.seconds, 2)}
        if report.epochs:
            row.update(best_epoch=report.best_epoch, epochs_run=report.epochs,
                       samples_per_s=round(report.samples_per_s))
        row.update(protocol_columns(evaluate_test(model, split, ks, feats)[0]))
        atomic_write_text(done, json.dumps(row, indent=2))
        rows.append(row)
        if progress:
            progress(spec.name, row)
    write_comparison([{k: v for k, v in r.items() if k != "settings"} for r in rows], out)
    atomic_write_text(out / "experiment.json", json.dumps({"config": config, "dataset": dataset.info(),
                                                           "split": split.summary()}, indent=2, default=str))
    return rows
