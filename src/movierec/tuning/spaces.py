"""Search spaces: which settings ``movierec tune MODEL`` searches, and over which ranges.

A space is a list of :class:`Param`, one per searched setting of the model: its name (a real setting of the
model, as ``movierec models MODEL`` lists it), its kind and its bounds:

- ``int``: an integer in [low, high] (``log = true``: sampled on a log scale);
- ``float``: a float in [low, high], uniform;
- ``log``: a float in [low, high] sampled log-uniformly (low > 0);
- ``categorical``: one of ``choices`` (strings, numbers or booleans).

:data:`SPACES` holds the built-in table of every tunable model. A user's ``--space FILE.toml`` overrides or
adds entries; its top-level keys are settings of the model being tuned::

    k = { kind = "int", low = 10, high = 800, log = true }    # searched
    shrink = { kind = "float", low = 0, high = 50 }
    measure = { kind = "categorical", choices = ["dot", "cosine"] }
    block_size = 1024                                          # a plain value: fixed, not searched

Every bound is checked against the setting's declared limits (``setting(..., ge=..., le=...)``) through
:func:`movierec.models.registry.validate_settings`, so a space can never propose a value the model refuses.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

from movierec.errors import MovieRecError
from movierec.models.registry import get_model_class, model_entry, validate_settings
from movierec.models.settings import unknown_key_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["KINDS", "SPACES", "Param", "check_space", "load_space_file", "model_settings", "resolve_space"]

KINDS = ("int", "float", "log", "categorical")


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched setting: ``name``, ``kind`` (one of :data:`KINDS`), ``low``/``high`` for numbers (inclusive),
    ``choices`` for a categorical, ``log`` for an int sampled on a log scale."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    log: bool = False

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna ``trial`` proposes for this setting."""
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        if self.kind == "float":
            return trial.suggest_float(self.name, float(self.low), float(self.high))  # type: ignore[arg-type]
        if self.kind == "log":
            return trial.suggest_float(self.name, float(self.low), float(self.high), log=True)  # type: ignore[arg-type]
        return trial.suggest_categorical(self.name, list(self.choices))

    def describe(self) -> str:
        """A short text, e.g. ``k int 10..800 (log)`` or ``measure in dot|cosine``."""
        if self.kind == "categorical":
            return f"{self.name} in {'|'.join(str(c) for c in self.choices)}"
        scale = " (log)" if self.kind == "log" or self.log else ""
        kind = "float" if self.kind == "log" else self.kind
        return f"{self.name} {kind} {_num(self.low)}..{_num(self.high)}{scale}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high)
            if self.kind == "int" and self.log:
                out["log"] = True
        return out


def _num(v: float | None) -> str:
    return "?" if v is None else (str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}")


_NCF_COMMON = (Param("lr", "log", 1e-4, 1e-2), Param("negatives", "int", 1, 8))

SPACES: dict[str, tuple[Param, ...]] = {
    "itemknn": (Param("k", "int", 10, 800, log=True), Param("shrink", "float", 0.0, 50.0)),
    "gmf": (Param("factors", "int", 8, 128, log=True), *_NCF_COMMON, Param("l2", "log", 1e-7, 1e-3)),
    "mlp": (Param("embedding_dim", "int", 8, 128, log=True), Param("layers", "int", 1, 4), *_NCF_COMMON),
    "neumf": (Param("factors", "int", 8, 64, log=True), Param("layers", "int", 1, 4), *_NCF_COMMON),
    "content": (Param("features", "categorical", choices=("genres", "weighted-genres", "genres,tags,year", "all")),
                Param("measure", "categorical", choices=("dot", "cosine", "euclidean")),
                Param("min_tag_movies", "int", 1, 10)),
    "content-neural": (Param("dim", "int", 16, 128, log=True), Param("hidden", "int", 32, 512, log=True),
                       *_NCF_COMMON),
    "neumf-features": (Param("factors", "int", 8, 64, log=True), Param("layers", "int", 1, 4), *_NCF_COMMON),
    "ease": (Param("l2", "log", 1.0, 5000.0),),
    "ials": (Param("factors", "int", 32, 256), Param("regularization", "log", 1e-3, 1.0),
             Param("alpha", "log", 0.1, 50.0), Param("iterations", "int", 5, 30)),
    "multvae": (Param("latent", "int", 32, 256, log=True), Param("hidden", "int", 100, 800, log=True),
                Param("dropout", "float", 0.2, 0.7), Param("lr", "log", 3e-4, 3e-3),
                Param("total_anneal_steps", "int", 200, 20000, log=True)),
    "multdae": (Param("latent", "int", 32, 256, log=True), Param("hidden", "int", 100, 800, log=True),
                Param("dropout", "float", 0.2, 0.7), Param("lr", "log", 3e-4, 3e-3), Param("l2", "log", 1e-6, 1e-1)),
    "sasrec": (Param("dim", "categorical", choices=(32, 64, 128)), Param("blocks", "int", 1, 3),
               Param("dropout", "float", 0.1, 0.6), Param("lr", "log", 3e-4, 3e-3),
               Param("max_len", "categorical", choices=(50, 100, 200))),
    "gru4rec": (Param("dim", "categorical", choices=(32, 64, 128)), Param("hidden", "int", 32, 256, log=True),
                Param("layers", "int", 1, 2), Param("dropout", "float", 0.0, 0.6), Param("lr", "log", 3e-4, 1e-2),
                Param("max_len", "categorical", choices=(50, 100, 200))),
}
"""The built-in search space of every tunable model (the models with settings worth searching)."""


def model_settings(model: str) -> list[str]:
    """The setting names of ``model`` (a one-line error when the model is unknown or cannot be imported)."""
    entry = model_entry(model)
    try:
        cls = get_model_class(entry.name)
    except ImportError as e:
        raise MovieRecError(f"model {entry.name!r} cannot be loaded ({e}); is it installed?") from None
    return cls.config_class.names()


def _param_from_toml(model: str, name: str, spec: dict[str, Any], where: str) -> Param:
    """A :class:`Param` from one inline table of a space file (checked for keys, kinds and types)."""
    allowed = {"kind", "low", "high", "choices", "log"}
    for key in spec:
        if key not in allowed:
            raise unknown_key_error(f"{where} {name}", key, sorted(allowed), "key")
    kind = spec.get("kind")
    if kind is None:  # infer: choices -> categorical, else int when both bounds are integers
        kind = "categorical" if "choices" in spec else (
            "int" if all(isinstance(spec.get(b), int) and not isinstance(spec.get(b), bool) for b in ("low", "high"))
            else "float")
    if kind not in KINDS:
        raise MovieRecError(f"{where} {name}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise MovieRecError(f"{where} {name}: a categorical needs choices = [...] (at least one value)")
        if any(isinstance(c, (dict, list)) for c in choices):
            raise MovieRecError(f"{where} {name}: choices must be strings, numbers or booleans")
        return Param(name, kind, choices=tuple(choices))
    for bound in ("low", "high"):
        v = spec.get(bound)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise MovieRecError(f"{where} {name}: {kind} needs numbers low and high (got {bound} = {v!r})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise MovieRecError(f"{where} {name}: log must be true or false")
    if kind == "float" and log:
        kind = "log"
    return Param(name, kind, spec["low"], spec["high"], log=log and kind == "int")


def check_space(model: str, params: list[Param] | tuple[Param, ...], where: str = "search space") -> None:
    """Refuse a space that names a setting ``model`` does not have, has empty or reversed bounds, or bounds
    (and choices) outside the setting's declared limits. One-line :class:`MovieRecError` naming the setting."""
    names = model_settings(model)
    for p in params:
        if p.name not in names:
            raise unknown_key_error(f"{where} ({model})", p.name, names)
        label = f"{where} ({model}) {p.name}"
        if p.kind not in KINDS:
            raise MovieRecError(f"{label}: kind {p.kind!r} is not one of {', '.join(KINDS)}")
        if p.kind == "categorical":
            if not p.choices:
                raise MovieRecError(f"{label}: no choices")
            values = list(p.choices)
        else:
            if p.low is None or p.high is None or not (math.isfinite(p.low) and math.isfinite(p.high)):
                raise MovieRecError(f"{label}: low and high must be finite numbers")
            if p.low > p.high:
                raise MovieRecError(f"{label}: low {_num(p.low)} is above high {_num(p.high)}")
            if p.kind == "int" and not (float(p.low).is_integer() and float(p.high).is_integer()):
                raise MovieRecError(f"{label}: an int range needs integer bounds")
            if (p.kind == "log" or p.log) and p.low <= 0:
                raise MovieRecError(f"{label}: a log scale needs low > 0 (got {_num(p.low)})")
            values = [int(p.low), int(p.high)] if p.kind == "int" else [float(p.low), float(p.high)]
        for v in values:  # the model's own validation: names, types and declared ranges
            validate_settings(model, {p.name: v}, label)


def load_space_file(path: str | Path, model: str) -> tuple[list[Param], dict[str, Any]]:
    """The searched settings and the fixed settings of a space TOML for ``model`` (see the module doc)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise MovieRecError(f"--space {path}: file not found") from None
    except IsADirectoryError:
        raise MovieRecError(f"--space {path}: is a folder, not a TOML file") from None
    except UnicodeDecodeError:
        raise MovieRecError(f"--space {path}: not a text file") from None
    except tomllib.TOMLDecodeError as e:
        raise MovieRecError(f"--space {path}: invalid TOML ({e})") from None
    names = model_settings(model)
    where = f"--space {path}"
    params: list[Param] = []
    fixed: dict[str, Any] = {}
    for name, value in data.items():
        if name not in names:
            raise unknown_key_error(f"{where} ({model})", name, names)
        if isinstance(value, dict):
            params.append(_param_from_toml(model, name, value, where))
        else:
            fixed[name] = value
    check_space(model, params, where)
    fixed = validate_settings(model, fixed, where) if fixed else {}
    return params, fixed


def resolve_space(model: str, space_file: str | Path | None = None, fixed: dict[str, Any] | None = None
                  ) -> tuple[list[Param], dict[str, Any]]:
    """The space ``movierec tune`` searches for ``model``: the built-in one, with the space file's entries
    replacing or adding settings, and every fixed setting (the file's plain values, then ``fixed``, e.g. from
    ``--set``) taken out of the search. Returns (params, fixed settings), both checked."""
    params = {p.name: p for p in SPACES.get(model_entry(model).name, ())}
    file_fixed: dict[str, Any] = {}
    if space_file is not None:
        file_params, file_fixed = load_space_file(space_file, model)
        params.update({p.name: p for p in file_params})
    all_fixed = {**file_fixed, **(fixed or {})}
    searched = [p for name, p in params.items() if name not in all_fixed]
    check_space(model, searched)
    return searched, all_fixed
