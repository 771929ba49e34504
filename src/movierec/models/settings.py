"""Model settings: pydantic models composed of parts, each field declared once with its help and bounds.

A group of settings is a :class:`Settings` (a frozen pydantic model) whose fields are declared with
:func:`setting` (a default, one line of help, and a range or a list of choices). A model's settings are
*composed*, not inherited: a field whose type is itself a :class:`Settings` is a part, declared with
:func:`part`. A model trained by the trainer shell has three:

    class GMFSettings(Settings):
        train: TrainerSettings = part(TrainerSettings)     # read by the trainer shell only
        step: PairwiseSettings = part(PairwiseSettings)    # read by NCF's pairwise step only
        factors: int = setting(64, "embedding size", ge=1)  # the model's own

Users see the settings flat (``--set epochs=5``, a TOML's keys, ``movierec models NAME``), so a leaf name is
unique across a model's parts (checked when the class is made). :meth:`Settings.flat` and
:meth:`Settings.with_values` convert between the two views; :func:`describe` lists the leaves for
``movierec models``; :func:`validate` checks flat values from ``--set``, an experiment TOML or a study TOML
(types and ranges) and names the closest valid key when one is misspelt.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import pydantic
from pydantic.fields import FieldInfo

from movierec.errors import MovieRecError

_BOUNDS = ("ge", "gt", "le", "lt")
#: keys of a run that say how it uses a GPU, not what the model is (movierec.training.Hardware's fields): a
#: run's (``RunSpec.hardware``, ``RunContext``), never a model setting
HARDWARE_KEYS = ("gpu_batch_factor", "amp")
_MISSING: Any = pydantic.fields.PydanticUndefined


def setting(default: Any = _MISSING, help: str = "", *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, choices: tuple[str, ...] | None = None,
            default_factory: Any = None) -> Any:
    """A field with its help line and allowed values (``ge``/``gt``/``le``/``lt`` bounds or ``choices``)."""
    bounds = {k: v for k, v in zip(_BOUNDS, (ge, gt, le, lt), strict=True) if v is not None}
    extra = {"choices": list(choices)} if choices else None
    if default_factory is not None:
        return pydantic.Field(default_factory=default_factory, description=help, json_schema_extra=extra, **bounds)
    return pydantic.Field(default, description=help, json_schema_extra=extra, **bounds)


def part(cls: type[Settings], help: str = "", **defaults: Any) -> Any:
    """A part of composed settings: ``cls``'s settings, with this model's own defaults for some of them."""
    return pydantic.Field(default_factory=lambda: cls(**defaults), description=help or cls.__doc__ or "")


class Settings(pydantic.BaseModel):
    """A frozen group of settings; a field typed as another :class:`Settings` is a part (see the module doc)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    #: how ``movierec models`` titles this group when it is a part
    title: ClassVar[str] = "model"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        seen: dict[str, str] = {}
        for path, _ in cls.leaves():
            name = path[-1]
            if name in seen:
                raise TypeError(f"{cls.__name__}: setting {name!r} is in two parts ({seen[name]} and "
                                f"{'.'.join(path)}); a setting's name must be unique across a model's parts")
            seen[name] = ".".join(path)

    @pydantic.field_validator("*", mode="after")
    @classmethod
    def _in_choices(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        choices = _choices(cls.model_fields[info.field_name])
        if choices and value not in choices:
            raise ValueError(f"must be one of {', '.join(map(str, choices))}")
        return value

    @classmethod
    def parts(cls) -> dict[str, type[Settings]]:
        """The part fields by name (empty for a group without parts)."""
        return {name: f.annotation for name, f in cls.model_fields.items() if _is_part(f)}

    @classmethod
    def leaves(cls, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
        """Every setting that is not a part, as (path, field), parts first, in declaration order."""
        items = sorted(cls.model_fields.items(), key=lambda kv: not _is_part(kv[1]))
        for name, f in items:
            if _is_part(f):
                yield from f.annotation.leaves((*prefix, name))
            else:
                yield (*prefix, name), f

    @classmethod
    def names(cls) -> list[str]:
        """Every setting's flat name."""
        return [path[-1] for path, _ in cls.leaves()]

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name (what users write, bundles store and run keys hash)."""
        out: dict[str, Any] = {}
        for path, _ in self.leaves():
            node: Any = self
            for key in path:
                node = node.__dict__[key]  # not getattr: reading every setting here is not a model reading it
            out[path[-1]] = node
        return out

    def with_values(self, **values: Any) -> typing.Self:
        """A validated copy with the flat ``values`` set (unknown names: a one-line :class:`MovieRecError`)."""
        paths = {path[-1]: path for path, _ in self.leaves()}
        tree = self.model_dump()
        for key, value in values.items():
            if key not in paths:
                raise unknown_key_error(type(self).__name__, key, paths)
            node = tree
            for k in paths[key][:-1]:
                node = node[k]
            node[paths[key][-1]] = value
        return type(self).model_validate(tree)

    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> typing.Self:
        """The defaults with the flat ``values`` set."""
        return cls().with_values(**values)


class NoSettings(Settings):
    """A model without settings."""


def _is_part(f: FieldInfo) -> bool:
    return isinstance(f.annotation, type) and issubclass(f.annotation, Settings)


def _choices(f: FieldInfo) -> list[Any] | None:
    extra = f.json_schema_extra
    return extra.get("choices") if isinstance(extra, dict) else None


def _bounds(f: FieldInfo) -> dict[str, Any]:
    out = {}
    for m in f.metadata:
        for k in _BOUNDS:
            if getattr(m, k, None) is not None:
                out[k] = getattr(m, k)
    return out


@dataclass(frozen=True)
class SettingInfo:
    """One setting as users see it: name, the part it belongs to, type name, default, allowed values and help."""

    name: str
    part: str
    type: str
    default: Any
    allowed: str
    help: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _allowed(f: FieldInfo) -> str:
    choices = _choices(f)
    if choices:
        return " | ".join(map(str, choices))
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return ", ".join(f"{words[k]} {v}" for k, v in _bounds(f).items())


def describe(settings_class: type[Settings]) -> list[SettingInfo]:
    """Every setting of a settings class, part by part (trainer, step, then the model's own)."""
    defaults = settings_class().flat()
    out = []
    for path, f in settings_class.leaves():
        owner: type[Settings] = settings_class
        for key in path[:-1]:
            owner = owner.model_fields[key].annotation
        typ = f.annotation
        out.append(SettingInfo(path[-1], owner.title if len(path) > 1 else "model", getattr(typ, "__name__", str(typ)),
                               defaults[path[-1]], _allowed(f), f.description or ""))
    return out


def bounds(settings_class: type[Settings]) -> dict[str, dict[str, Any]]:
    """Each setting's numeric bounds by flat name: {"ge": 1} and the like (empty for an unbounded one)."""
    return {path[-1]: _bounds(f) for path, f in settings_class.leaves()}


@functools.cache
def _adapter(settings_class: type[Settings], name: str) -> pydantic.TypeAdapter:
    f = dict((path[-1], f) for path, f in settings_class.leaves())[name]
    return pydantic.TypeAdapter(Annotated[f.annotation, pydantic.Field(**_bounds(f))])


def closest(name: str, names: typing.Iterable[str]) -> str | None:
    """The closest valid name to a misspelt one, or None when nothing is close."""
    found = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_key_error(where: str, key: str, known: typing.Iterable[str], what: str = "setting") -> MovieRecError:
    known = list(known)
    near = closest(key, known)
    hint = f"; did you mean {near!r}?" if near else ""
    return MovieRecError(f"{where}: unknown {what} {key!r}{hint} (valid: {', '.join(known) or 'none'})")


def validate(settings_class: type[Settings], values: dict[str, Any], where: str) -> dict[str, Any]:
    """Flat ``values`` checked one by one against the settings of ``settings_class`` and converted to their types.

    ``where`` names the source in errors (e.g. ``"gmf --set"`` or ``"run 'GMF' in study.toml"``). Only the
    given keys are returned; every error is a one-line :class:`MovieRecError`. Checks across settings (SASRec:
    heads divide dim) are the class's validators, run when the settings are made (:meth:`Settings.from_flat`).
    """
    fields = dict((path[-1], f) for path, f in settings_class.leaves())
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise unknown_key_error(where, key, fields)
        try:
            checked = _adapter(settings_class, key).validate_python(value)
            choices = _choices(fields[key])
            if choices and checked not in choices:
                raise ValueError(f"must be one of {', '.join(map(str, choices))}")
        except (pydantic.ValidationError, ValueError) as e:
            msg = e.errors()[0]["msg"] if isinstance(e, pydantic.ValidationError) else str(e)
            allowed = _allowed(fields[key])
            hint = f" (allowed: {allowed})" if allowed else ""
            raise MovieRecError(f"{where}: {key} = {value!r} is invalid: {msg.lower()}{hint}") from None
        out[key] = checked
    return out


def parse_pairs(pairs: list[str], where: str) -> dict[str, str]:
    """``["k=50", "shrink=10"]`` -> {"k": "50", "shrink": "10"} (values are converted by :func:`validate`)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise MovieRecError(f"{where}: expected key=value, got {pair!r}")
        out[key.strip().replace("-", "_")] = raw.strip()
    return out
