"""``movierec models [NAME]``: the registered models, their families and settings (from the registry)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from movierec.cli.common import JsonOpt, console, print_json


def models_cmd(
    name: Annotated[str | None, typer.Argument(help="A model: list its settings.", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """The models movierec can train; with NAME, that model's settings (type, default, allowed, help), the
    trainer's and its training step's first, then its own, and how it uses a GPU.

    Examples: movierec models; movierec models neumf --json
    """
    from movierec.models.registry import ENTRIES, model_entry

    entries = [model_entry(name)] if name else list(ENTRIES)
    if as_json:
        print_json([e.to_json() for e in entries] if name is None else entries[0].to_json())
        return
    if name is None:
        t = Table("model", "family", "summary", title="models (`movierec models NAME` for settings)")
        for e in entries:
            t.add_row(escape(e.name), escape(e.family), escape(e.summary))
        console.print(t)
        return
    entry = entries[0]
    hardware = entry.hardware()
    caption = None
    if hardware is not None:
        caption = (f"On a GPU (the run's keys, not settings: train --set, a TOML run): gpu_batch_factor = "
                   f"{hardware['gpu_batch_factor']}, amp = {str(hardware['amp']).lower()}")
    settings = entry.settings()
    composed = len({s.part for s in settings}) > 1  # a part column only where there are parts
    t = Table(*(["part"] if composed else []), "setting", "type", "default", "allowed", "help", caption=caption,
              caption_justify="left", title=escape(f"{entry.name} · {entry.family} · {entry.summary}"))
    last = None
    for s in settings:
        if last is not None and s.part != last:
            t.add_section()
        part = [s.part if s.part != last else ""] if composed else []
        t.add_row(*(escape(str(v)) for v in (*part, s.name, s.type, repr(s.default), s.allowed, s.help)))
        last = s.part
    console.print(t)
