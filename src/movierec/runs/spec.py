"""What a run is: a :class:`RunSpec` (model, settings, split, protocols, phases), and the TOML configs that list
runs (an experiment's grid, the study's runs), validated before any work.

    [experiment]           # or [study]
    split = "loo"          # or a dataset's predefined split (NCF files) when it has one
    seed = 42
    refit = true           # refit every model on training + validation before the test, choices kept (the
                           # default; false: only models with per-user parameters, the others read it)

    [defaults]             # settings applied to every run (and hybrid part) that has them (e.g. epochs)
    epochs = 20

    [[run]]                # one run; list values are NOT expanded here
    name = "mlp3-e8"
    model = "mlp"
    embedding_dim = 8

    [[grid]]               # the cartesian product of every list value; names are generated
    model = "neumf"
    factors = [8, 16, 32, 64]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pydantic

from movierec.errors import MovieRecError
from movierec.evaluation.protocols import PROTOCOLS
from movierec.models import ENTRIES, get_model_class, validate_settings
from movierec.models.settings import HARDWARE_KEYS, unknown_key_error

__all__ = ["HARDWARE_KEYS", "PHASES", "RunSpec", "check_run_tables", "expand_runs", "slug", "split_hardware",
           "validate_config"]

PHASES = ("fit", "validate", "test", "final")
"""fit: on the training part, the validation part for the model's choices; validate: score the validation
part; test: score the test part from everything before each test item (see :mod:`movierec.runs.engine`);
final: fit on every interaction with the settings and choices given (a model for serving)."""


class _Hardware(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    gpu_batch_factor: int | None = pydantic.Field(None, ge=1)
    amp: bool | None = None


def split_hardware(values: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run's flat keys as (model settings, hardware): ``gpu_batch_factor`` (a batch multiplier on a GPU, the
    learning rate scaled by its square root) and ``amp`` (bf16 autocast on CUDA) are the run's, checked here;
    every other key is left for the model to check."""
    given = {k: v for k, v in values.items() if k in HARDWARE_KEYS}
    try:
        checked = _Hardware.model_validate(given)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        raise MovieRecError(f"{where}: {err['loc'][0]} = {err.get('input')!r} is invalid: "
                            f"{err['msg'].lower()}") from None
    hardware = {k: getattr(checked, k) for k in given}
    return {k: v for k, v in values.items() if k not in HARDWARE_KEYS}, hardware


@dataclass
class RunSpec:
    """One run. ``settings`` are the model's (validated); ``split``/``seed`` name the split; ``protocols`` and
    ``ks`` how the test part is scored; ``phases`` what the run does (:data:`PHASES`); ``refit``: refit the model
    on training + validation before the test, its validation choices kept (the default; False: a model that
    scores histories exactly reads them as a history instead, and only models with per-user parameters are
    refitted); ``hardware``: how it uses a GPU (:data:`HARDWARE_KEYS`; unset: the model's defaults)."""

    name: str
    model: str
    settings: dict[str, Any] = field(default_factory=dict)
    split: str = "loo"
    seed: int = 42
    protocols: tuple[str, ...] = PROTOCOLS
    ks: tuple[int, ...] = (10,)
    phases: tuple[str, ...] = ("fit", "validate", "test")
    refit: bool = True
    hardware: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [p for p in self.phases if p not in PHASES]
        if unknown:
            raise ValueError(f"unknown phase {unknown[0]!r} (known: {', '.join(PHASES)})")
        if "final" in self.phases and len(self.phases) > 1:
            raise ValueError("a final run has the one phase 'final' (nothing is held out to validate or test)")

    @property
    def final(self) -> bool:
        return "final" in self.phases


def slug(name: str) -> str:
    """A run name as a folder name: letters, digits, "-", "_" and "." kept, everything else "_"."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# -- configs ------------------------------------------------------------------------------------------------
_RESERVED = {"name", "model", "label"}
_SPLITS = Literal["loo", "vae-cf", "cold-items"]


class _ExperimentSection(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str | None = None
    split: _SPLITS = "loo"
    seed: int = pydantic.Field(42, ge=0)
    ks: list[Annotated[int, pydantic.Field(ge=1)]] = pydantic.Field([10], min_length=1)
    refit: bool = True


class _StudySection(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    split: _SPLITS = "loo"
    seed: int = pydantic.Field(42, ge=0)
    examples: int = pydantic.Field(3, ge=0)
    similar: str | None = None
    save_models: bool = True
    eda_sample: int = pydantic.Field(1_000_000, ge=1)
    refit: bool = True
    serve: list[str] = []


_SECTIONS = {"experiment": {"experiment": _ExperimentSection, "defaults": None, "run": None, "grid": None},
             "study": {"study": _StudySection, "segments": None, "defaults": None, "run": None, "grid": None}}


def validate_config(config: dict[str, Any], kind: str, where: str = "config") -> None:
    """Check a study or experiment TOML before any work: known sections, the [study]/[experiment] keys'
    types and ranges, every [[run]]/[[grid]] naming a model, every model setting (see :func:`expand_runs`),
    and (study) every name in ``serve`` naming a run. Errors are one line naming the section and key, with
    the closest valid name for a misspelling."""
    sections = _SECTIONS[kind]
    for name, value in config.items():
        if name not in sections:
            raise unknown_key_error(where, name, sections, "section")
        if name in ("run", "grid"):
            continue  # arrays of tables: checked below
        if not isinstance(value, dict):
            raise MovieRecError(f"{where}: [{name}] must be a table of settings, not {value!r}")
        schema = sections[name]
        if schema is None:
            continue
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
        check_run_tables(config.get(table, []), where, table)
    specs = expand_runs(config)
    names = [s.name for s in specs]
    for served in config.get(kind, {}).get("serve", []):
        if served not in names:
            raise unknown_key_error(f"{where} [{kind}] serve", served, names, "run")


def check_run_tables(entries: Any, where: str, table: str = "run") -> None:
    """A one-line error unless ``entries`` is an array of tables (``[[run]]``) each naming a model by a string."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise MovieRecError(f"{where}: {table} must be written as [[{table}]] tables (one per {table}), "
                            f"not {table} = {entries!r}")
    for n, entry in enumerate(entries, 1):
        if "model" not in entry:
            raise MovieRecError(f"{where}: [[{table}]] number {n} ({entry.get('name', 'unnamed')!r}) names no "
                                "model")
        if not isinstance(entry["model"], str):
            raise MovieRecError(f"{where}: [[{table}]] number {n}: model = {entry['model']!r} is not a model name "
                                "(a string)")


def _label(model: str, settings: dict[str, Any]) -> str:
    parts = [model] + [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()]
    return " ".join(parts)


def expand_runs(config: dict[str, Any], overrides: dict[str, Any] | None = None, **common: Any) -> list[RunSpec]:
    """The config's runs in order: every [[run]], then every [[grid]] expanded; defaults applied.

    ``overrides`` (``--set key=value``) go over every run's own settings, and a hybrid's parts', wherever the
    model has that setting; one that no run has is an error. ``common``: :class:`RunSpec` fields every run
    gets (split, seed, ks, phases, refit)."""
    defaults = config.get("defaults", {})
    overrides = overrides or {}
    used: set[str] = set()
    specs: list[tuple[str, str, dict[str, Any]]] = []
    for entry in config.get("run", []):
        settings = {k: v for k, v in entry.items() if k not in _RESERVED}
        specs.append((entry.get("name") or _label(entry["model"], settings), entry["model"], settings))
    for entry in config.get("grid", []):
        keys = [k for k in entry if k not in _RESERVED]
        values = [v if isinstance(v, list) else [v] for v in (entry[k] for k in keys)]
        for combo in itertools.product(*values):
            settings = dict(zip(keys, combo, strict=True))
            prefix = entry.get("name")
            name = f"{prefix} {_label('', settings).strip()}" if prefix else _label(entry["model"], settings)
            specs.append((name, entry["model"], settings))
    known_defaults: set[str] = set(HARDWARE_KEYS)
    used |= set(HARDWARE_KEYS) & overrides.keys()
    out = []
    for name, model, given in specs:
        cls = get_model_class(model)
        fields = set(cls.config_class.names())
        known_defaults |= fields
        merged = {k: v for k, v in defaults.items() if k in fields}
        merged.update(given)
        merged.update({k: v for k, v in overrides.items() if k in fields})
        used |= fields & overrides.keys()
        for part, part_settings in (("a", "a_settings"), ("b", "b_settings")):  # a hybrid's parts get them too
            if part_settings in fields:
                part_name = merged.get(part, cls.config_class().flat()[part])
                part_fields = set(get_model_class(part_name).config_class.names())
                known_defaults |= part_fields
                used |= part_fields & overrides.keys()
                merged[part_settings] = {**{k: v for k, v in defaults.items() if k in part_fields},
                                         **merged.get(part_settings, {}),
                                         **{k: v for k, v in overrides.items() if k in part_fields}}
        hardware = {k: v for k, v in defaults.items() if k in HARDWARE_KEYS}
        settings, own = split_hardware({**merged, **{k: v for k, v in overrides.items() if k in HARDWARE_KEYS}},
                                       f"run {name!r}")
        hardware.update(own)
        out.append(RunSpec(name, model, validate_settings(model, settings, f"run {name!r}"),
                           hardware=split_hardware(hardware, "[defaults]")[1], **common))
    for key in defaults:  # a default no model of this config has may still be a misspelling
        if key not in known_defaults and key not in _all_settings():
            raise unknown_key_error("[defaults]", key, sorted(_all_settings()), "setting (of any model)")
    for key in overrides.keys() - used:
        raise MovieRecError(f"--set {key}: no run of this config has that setting "
                            f"(its models: {', '.join(sorted({s.model for s in out}))})")
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise MovieRecError("two runs have the same name; give [[run]] entries distinct names")
    return out


def _all_settings() -> set[str]:
    return {name for e in ENTRIES for name in e.load().config_class.names()}
