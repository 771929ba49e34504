"""What ``movierec tune`` writes: best.toml, trials.csv, optuna.html and study.json (each atomically).

- ``best.toml``: one ``[[run]]`` table (name, model, the fixed and the best sampled settings). It is an
  experiment config and a study config as it stands (``movierec experiment best.toml ...``), its table can be
  pasted into any other experiment or study config, and its settings are the ``--set`` values of
  ``movierec train`` (the file's comments spell the command out).
- ``trials.csv``: one row per trial: number, state, value, seconds, epochs, params (JSON), one column per
  searched setting, the last intermediate value and the error of a failed trial.
- ``optuna.html``: the optimisation history (Optuna's plotly figure, inlined, when plotly is installed;
  otherwise an inline SVG drawn here) and the table of trials; one self-contained file, no CDN.
- ``study.json``: a summary (model, data, split, metric, best value and settings, counts, version).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import shlex
from pathlib import Path
from typing import Any

from movierec.fsutil import atomic_write_text
from movierec.tuning.search import TrialRow, TuneResult

__all__ = ["OUTPUT_FILES", "best_toml", "history_html", "summary", "toml_value", "trials_csv", "write_outputs"]

OUTPUT_FILES = ("best.toml", "trials.csv", "optuna.html", "study.json")


def toml_value(v: Any) -> str:
    """A setting's value in TOML (strings, booleans, integers, floats)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan" if v != v else ("inf" if v > 0 else "-inf")
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def _set_value(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def best_toml(result: TuneResult, data: str, split: dict[str, Any], out_hint: str = "OUT") -> str:
    """best.toml's text: comments saying where it came from and how to use it, then one ``[[run]]`` table."""
    best = result.best
    settings = result.best_settings
    sets = " ".join(shlex.quote(f"--set={k}={_set_value(v)}") if " " in _set_value(v) else f"--set {k}={_set_value(v)}"
                    for k, v in settings.items())
    if best is None:
        found = ["# no trial finished: the table holds the fixed settings only"]
    elif best.defaults:
        found = [f"# no trial beat the model's defaults (trial #0, validation NDCG@10 {best.value:.4f} "
                 f"[{result.metric}]) in {len(result.trials)} trials (trials.csv):",
                 "# the table keeps the defaults"]
    else:
        others = [t for t in result.trials if t.defaults and t.value is not None]
        found = [f"# validation NDCG@10 {best.value:.4f} [{result.metric}] at trial #{best.number} of "
                 f"{len(result.trials)} (trials.csv)"
                 + (f"; the defaults (trial #0) scored {others[0].value:.4f}" if others else "")]
    lines = [
        f"# Best settings found by `movierec tune {result.model}` on {data} ({split.get('protocol', 'loo')} split, "
        f"seed {split.get('seed', 42)}),",
        *found,
        "# Use them with:",
        f"#   movierec train {result.model} --data {data} --out runs/{result.model}-tuned {sets}".rstrip(),
        f"#   movierec train {result.model} --data {data} --out runs/{result.model}-tuned "
        f"--config {out_hint}/best.toml",
        f"#   movierec experiment {out_hint}/best.toml --data {data} --out out/{result.model}-tuned",
        "#   or paste the [[run]] table below into an experiment or study config.",
        "",
        "[[run]]",
        f"name = {json.dumps(f'{result.model} (tuned)')}",
        f"model = {json.dumps(result.model)}",
        *(f"{k} = {toml_value(v)}" for k, v in settings.items()),
        "",
    ]
    return "\n".join(lines)


def trials_csv(result: TuneResult) -> str:
    """trials.csv's text: one row per trial (see the module doc)."""
    names = [p.name for p in result.params]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["number", "state", "value", "seconds", "epochs", "params", *[f"param_{n}" for n in names],
                "last_intermediate", "error"])
    for t in result.trials:
        w.writerow([t.number, t.state, "" if t.value is None else repr(t.value), f"{t.seconds:.3f}", t.epochs,
                    json.dumps(t.params, sort_keys=True), *["" if n not in t.params else t.params[n] for n in names],
                    "" if t.last_intermediate is None else repr(float(t.last_intermediate)), t.error])
    return buf.getvalue()


def summary(result: TuneResult, dataset: dict[str, Any], split: dict[str, Any], version: str) -> dict[str, Any]:
    """study.json: what was searched, on what, and what was found."""
    best = result.best
    return {
        "format": "movierec-tune",
        "version": version,
        "model": result.model,
        "data": dataset,
        "split": split,
        "objective": {"metric": "NDCG@10", "protocol": result.metric, "part": "valid", "direction": "maximize"},
        "sampler": {"name": "TPE", "seed": result.seed},
        "pruner": {"name": "median", "reports": "per-epoch validation NDCG@10 [sampled-100]"},
        "space": [p.to_json() for p in result.params],
        "fixed": result.fixed,
        "best": None if best is None else {"trial": best.number, "value": best.value, "params": best.params,
                                           "settings": result.best_settings, "defaults": best.defaults},
        "beats_defaults": result.beats_defaults,
        "best_value": None if best is None else best.value,
        "best_params": None if best is None else best.params,
        "trials": len(result.trials),
        "complete": result.count("COMPLETE"),
        "pruned": result.count("PRUNED"),
        "failed": result.count("FAIL"),
        "seconds": round(result.seconds, 3),
        "interrupted": result.interrupted,
    }


# -- optuna.html ---------------------------------------------------------------------------------------------
_STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f4f4f4}td.l{text-align:left}
.COMPLETE{color:#1f5fa8}.PRUNED{color:#888}.FAIL{color:#b22}svg text{font-size:11px}"""


def _svg_history(trials: list[TrialRow]) -> str:
    """The optimisation history as an inline SVG: each complete trial's value (dots), pruned trials at their
    last intermediate value (grey rings), and the best value so far (a step line)."""
    pts = [(t.number, t.value, "COMPLETE") for t in trials if t.value is not None]
    pts += [(t.number, float(t.last_intermediate), "PRUNED") for t in trials
            if t.state == "PRUNED" and t.last_intermediate is not None]
    if not pts:
        return "<p>No trial finished with a value.</p>"
    w, h, pad, left = 640, 320, 40, 78
    xs = [t.number for t in trials]  # every trial, failed ones too, so the axis shows how many ran
    ys = [p[1] for p in pts]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.01, y1 + 0.01

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (w - left - pad)

    def sy(y: float) -> float:
        return h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
             'aria-label="optimisation history">',
             f'<line x1="{left}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#444"/>',
             f'<line x1="{left}" y1="{pad}" x2="{left}" y2="{h - pad}" stroke="#444"/>',
             f'<text x="{(left + w - pad) / 2}" y="{h - 8}" text-anchor="middle">trial (number)</text>',
             f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">'
             "validation NDCG@10</text>"]
    for frac in (0.0, 0.5, 1.0):
        yv = y0 + frac * (y1 - y0)
        parts.append(f'<text x="{left - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.4f}</text>')
    for xv in sorted({x0, x1}):
        parts.append(f'<text x="{sx(xv):.1f}" y="{h - pad + 14}" text-anchor="middle">{xv}</text>')
    best, steps = -math.inf, []
    for number, value, _ in sorted(p for p in pts if p[2] == "COMPLETE"):
        best = max(best, value)
        steps.append((sx(number), sy(best)))
    if steps:
        d = f"M{steps[0][0]:.1f},{steps[0][1]:.1f}" + "".join(
            f" H{x:.1f} V{y:.1f}" for x, y in steps[1:]) + f" H{sx(x1):.1f}"
        parts.append(f'<path d="{d}" fill="none" stroke="#d62" stroke-width="1.5"/>')
    for number, value, state in pts:
        style = 'fill="#1f5fa8"' if state == "COMPLETE" else 'fill="none" stroke="#888"'
        parts.append(f'<circle cx="{sx(number):.1f}" cy="{sy(value):.1f}" r="4" {style}>'
                     f'<title>trial {number} {state.lower()}: {value:.4f}</title></circle>')
    parts.append("</svg>")
    parts.append("<p><small>Dots: complete trials; rings: pruned trials at their last reported epoch; "
                 "line: the best value so far.</small></p>")
    return "\n".join(parts)


def _plotly_history(study: Any) -> str | None:
    """Optuna's optimisation-history and intermediate-values figures with plotly.js inlined, or None when
    plotly is not installed (or the figures cannot be drawn)."""
    try:
        import plotly  # noqa: F401
        from optuna.visualization import plot_intermediate_values, plot_optimization_history
    except ImportError:
        return None
    try:
        figs = [plot_optimization_history(study)]
        if any(t.intermediate_values for t in study.trials):
            figs.append(plot_intermediate_values(study))
        return "\n".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs))
    except Exception:  # a figure is a convenience: the SVG below is drawn instead
        return None


def _short(v: Any) -> str:
    """A value as shown on the page: floats to 4 significant digits (the files keep every digit)."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def history_html(result: TuneResult, title: str) -> str:
    """optuna.html: the history figure and the table of trials, one self-contained page."""
    esc = html.escape
    figure = (_plotly_history(result.study) if result.study is not None else None) or _svg_history(result.trials)
    best = result.best
    head = (f"best: trial #{best.number}, NDCG@10 {best.value:.4f} [{result.metric}, validation], "
            + ", ".join(f"{k} = {_short(v)}" for k, v in best.params.items())) if best else "no trial finished"
    names = [p.name for p in result.params]
    rows = []
    for t in result.trials:
        value = "" if t.value is None else f"{t.value:.4f}"
        cells = "".join(f"<td>{esc(_short(t.params.get(n, '')))}</td>" for n in names)
        rows.append(f'<tr class="{esc(t.state)}"><td>{t.number}</td><td class="l">{esc(t.state.lower())}</td>'
                    f"<td>{value}</td><td>{t.seconds:.1f}</td><td>{t.epochs or ''}</td>{cells}"
                    f'<td class="l">{esc(t.error)}</td></tr>')
    header = "".join(f"<th>{esc(n)}</th>" for n in names)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n<h1>{esc(title)}</h1>\n<p>{esc(head)}</p>\n"
            f"<p>Searched: {esc('; '.join(p.describe() for p in result.params) or 'nothing (fixed settings)')}. "
            f"{result.count('COMPLETE')} complete, {result.count('PRUNED')} pruned, {result.count('FAIL')} failed, "
            f"{result.seconds:.1f} s.</p>\n{figure}\n"
            f"<table><tr><th>trial</th><th>state</th><th>NDCG@10</th><th>s</th><th>epochs</th>{header}"
            f"<th>error</th></tr>\n" + "\n".join(rows) + "\n</table>\n</body></html>\n")


def write_outputs(out: str | Path, result: TuneResult, dataset: dict[str, Any], split: dict[str, Any],
                  version: str) -> dict[str, Any]:
    """Write the four files into folder ``out`` (each atomically, study.json last); return the summary."""
    out = Path(out)
    data = str(dataset.get("argument") or dataset.get("name") or "DATA")
    atomic_write_text(out / "trials.csv", trials_csv(result))
    atomic_write_text(out / "best.toml", best_toml(result, data, split, str(out)))
    atomic_write_text(out / "optuna.html", history_html(result, f"movierec tune {result.model} on {data}"))
    info = summary(result, dataset, split, version)
    atomic_write_text(out / "study.json", json.dumps(info, indent=2, default=_json_default) + "\n")
    return info


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)
