"""Model settings: declared once on each model's config dataclass, described and validated in one place.

A config class is a plain dataclass whose fields are declared with :func:`setting` (a default, one line of
help, and a range or a list of choices). :func:`describe` lists them for ``movierec models`` and
``train --help``; :func:`validate` checks values from ``--set``, an experiment TOML or a study TOML with
pydantic (types and ranges) and names the closest valid key when one is misspelt.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pydantic

from movierec.errors import MovieRecError

_BOUNDS = ("ge", "gt", "le", "lt")


def setting(default: Any = dataclasses.MISSING, help: str = "", *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, choices: tuple[str, ...] | None = None,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A config field with its help line and allowed values (``ge``/``gt``/``le``/``lt`` bounds or ``choices``)."""
    meta = {"help": help, "choices": choices, **{k: v for k, v in zip(_BOUNDS, (ge, gt, le, lt), strict=True)}}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class SettingInfo:
    """One setting as users see it: name, type name, default, allowed values and help."""

    name: str
    type: str
    default: Any
    allowed: str
    help: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _allowed(meta: typing.Mapping[str, Any]) -> str:
    if meta.get("choices"):
        return " | ".join(meta["choices"])
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return ", ".join(f"{words[k]} {meta[k]}" for k in _BOUNDS if meta.get(k) is not None)


def _hints(config_class: type) -> dict[str, Any]:
    return typing.get_type_hints(config_class)


def describe(config_class: type) -> list[SettingInfo]:
    """Every setting of a config dataclass, in declaration order."""
    hints = _hints(config_class)
    out = []
    for f in dataclasses.fields(config_class):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        typ = hints.get(f.name, Any)
        out.append(SettingInfo(f.name, getattr(typ, "__name__", str(typ)), default, _allowed(f.metadata),
                               f.metadata.get("help", "")))
    return out


@functools.cache
def _validator(config_class: type) -> type[pydantic.BaseModel]:
    hints = _hints(config_class)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(config_class):
        meta = f.metadata
        typ = hints.get(f.name, Any)
        if meta.get("choices"):
            typ = Literal[tuple(meta["choices"])]
        bounds = {k: meta[k] for k in _BOUNDS if meta.get(k) is not None}
        fields[f.name] = (Annotated[typ, pydantic.Field(**bounds)], None)
    model_config = pydantic.ConfigDict(extra="forbid")
    return pydantic.create_model(f"{config_class.__name__}Settings", __config__=model_config, **fields)


def closest(name: str, names: typing.Iterable[str]) -> str | None:
    """The closest valid name to a misspelt one, or None when nothing is close."""
    found = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_key_error(where: str, key: str, known: typing.Iterable[str], what: str = "setting") -> MovieRecError:
    known = list(known)
    near = closest(key, known)
    hint = f"; did you mean {near!r}?" if near else ""
    return MovieRecError(f"{where}: unknown {what} {key!r}{hint} (valid: {', '.join(known) or 'none'})")


def validate(config_class: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` checked against the settings of ``config_class`` and converted to their types.

    ``where`` names the source in errors (e.g. ``"gmf --set"`` or ``"run 'GMF' in study.toml"``). Only the
    given keys are returned; every error is a one-line :class:`MovieRecError`.
    """
    names = [f.name for f in dataclasses.fields(config_class)]
    for key in values:
        if key not in names:
            raise unknown_key_error(where, key, names)
    try:
        checked = _validator(config_class).model_validate(values)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"][:1])
        meta = next(f.metadata for f in dataclasses.fields(config_class) if f.name == key)
        allowed = _allowed(meta)
        hint = f" (allowed: {allowed})" if allowed else ""
        raise MovieRecError(f"{where}: {key} = {err.get('input')!r} is invalid: {err['msg'].lower()}{hint}") from None
    return {k: getattr(checked, k) for k in values}


def parse_pairs(pairs: list[str], where: str) -> dict[str, str]:
    """``["k=50", "shrink=10"]`` -> {"k": "50", "shrink": "10"} (values are converted by :func:`validate`)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise MovieRecError(f"{where}: expected key=value, got {pair!r}")
        out[key.strip().replace("-", "_")] = raw.strip()
    return out
