"""``report.html``: the study's results in one self-contained page (figures inlined), from the run's numbers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec._html import data_uri
from movierec._optional import template
from movierec.comparison import json_dumps
from movierec.data.dataset import Dataset
from movierec.data.splits import Split
from movierec.errors import MovieRecError
from movierec.fsutil import atomic_write_text
from movierec.study import charts
from movierec.study.conclusions import (
    FULL,
    SAMPLED,
    best_per_family,
    conclusions,
    family_order,
    pairwise_tests,
    tested_columns,
)

#: the comparison's column groups, left to right: full ranking first (the protocol to trust), so that on a phone
#: its columns are on screen beside the model's name and the rest scrolls sideways inside the table's box
TABLE_COLUMNS = [
    ("full", ["HR@10", "NDCG@10", "MAP@10"]),
    ("full, beyond accuracy", ["Coverage@10", "ILD@10", "Novelty@10", "Gini@10"]),
    ("sampled-100", ["HR@10", "NDCG@10"]),
]
LOWER_IS_BETTER = {"Gini@10"}
SPLIT_NOTES = {
    "loo": "Leave-one-out: each user's latest rating is the test item, the one before it the validation item "
           "(early stopping, hybrid tuning).",
    "cold-items": "Cold items: a tenth of the movies are held out with all their ratings; full ranking ranks each "
                  "test user's held-out movies among the held-out movies only, so beyond-accuracy measures describe "
                  "lists of cold movies. There is no validation part.",
    "vae-cf": "Strong generalisation (Liang et al. 2018): held-out users, ratings of 4 or more; 80% of a held-out "
              "user's ratings are folded in, the other 20% are the test items.",
}
TEST_INPUT_NOTE = {
    False: "Every model ranks the test item from everything the user did before it, the training ratings and the "
           "validation rating: models that score any history exactly read it as one, models with per-user "
           "parameters (GMF, MLP, NeuMF, content-neural) are refitted on it with their validation choices kept.",
    True: "Every model ranks the test item from everything the user did before it: each is refitted on the "
          "training and validation ratings with its validation choices kept.",
}
EXAMPLE_MODELS = 5  # model columns shown beside each example user's history (more: one per family)


def comparison_table(runs: list[Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The comparison (index: model name; family, metric and fit-time columns) and the standard errors over
    users of the per-user metrics (same index; NaN where no per-user values exist)."""
    table = pd.DataFrame([r.row for r in runs]).set_index("model")
    se = pd.DataFrame(index=table.index, columns=table.columns, dtype=float)
    for r in runs:
        for col in r.per_user.columns:
            v = r.per_user[col].dropna()
            if len(v) > 1:
                se.at[r.name, col] = float(v.std(ddof=1) / np.sqrt(len(v)))
    return table, se


def _table_context(table: pd.DataFrame) -> dict[str, Any]:
    groups, cols = [], []
    for protocol, metrics in TABLE_COLUMNS:
        source = "full" if protocol.startswith("full") else protocol
        present = [m for m in metrics if f"{m} [{source}]" in table]
        if present:
            groups.append({"label": protocol, "span": len(present)})
            cols += [{"key": f"{m} [{source}]", "label": m, "protocol": source} for m in present]
    best = {}  # every model that ties the best value of a column is highlighted
    for c in cols:
        values = table[c["key"]]
        top = values.min() if c["label"] in LOWER_IS_BETTER else values.max()
        best[c["key"]] = set(values.index[np.isclose(values, top, rtol=0, atol=1e-12)])
    rows = []
    for name, r in table.iterrows():
        reused = r.get("reused_parts") if "reused_parts" in table else None
        rows.append({"name": name, "family": r["family"], "fit": r["fit_seconds"],
                     "reused": bool(isinstance(reused, list) and reused),
                     "cells": [{"value": r[c["key"]], "top": name in best[c["key"]],
                                "fmt": "{:.1%}" if c["label"] == "Coverage@10" else
                                "{:.2f}" if c["label"] == "Novelty@10" else "{:.4f}"} for c in cols]})
    return {"groups": groups, "columns": cols, "rows": rows}


def _figure(title: str, stem: Path, draw: Callable[[Path, bool], Path], caption: str) -> dict[str, str]:
    """A chart in both layouts, ``stem``.png (wide) and ``stem``-narrow.png, as the page shows it: a
    <picture> whose img shows the wide chart and whose source the narrow one on a narrow screen."""
    wide = draw(stem.with_name(stem.name + ".png"), False)
    narrow = draw(stem.with_name(stem.name + "-narrow.png"), True)
    return {"title": title, "src": data_uri(wide), "narrow_src": data_uri(narrow), "caption": caption}


def _examples(dataset: Dataset, split: Split, runs: list[Any], users: np.ndarray, labels: np.ndarray,
              names: dict[str, str], table: pd.DataFrame) -> list[dict[str, Any]]:
    """Each example user's recent training history, held-out movie and the top-10 of a few models."""
    cat = dataset.catalog
    if cat is None:
        return []
    shown = _example_models(runs, table)
    train = split.train
    held_items: dict[int, set[int]] = {}
    for u_, i_ in zip(split.test.user.tolist(), split.test.item.tolist(), strict=True):
        held_items.setdefault(u_, set()).add(i_)
    ids = dataset.items.ids
    out = []
    for u in users.tolist():
        mine = np.flatnonzero(train.user == u)
        recent = mine[np.argsort(-train.timestamp[mine], kind="stable")][:10]
        history = [{"title": t, "rating": float(r)} for t, r in
                   zip(cat.titles(ids[train.item[recent]]), train.rating[recent], strict=True)]
        held = held_items.get(u, set())
        lists = []
        for r in shown:
            items = _top10_of(r, u)
            lists.append({"model": r.name, "items": [{"title": t, "hit": int(i) in held} for t, i in
                                                     zip(cat.titles(ids[items]), items, strict=True)]})
        titles = cat.titles(ids[sorted(held)])
        held_text = titles[0] if len(titles) == 1 else f"{len(titles)} movies ({'; '.join(titles[:3])}" + (
            "; ...)" if len(titles) > 3 else ")")
        out.append({"user": int(dataset.users.ids[u]), "segment": names.get(str(labels[u]), str(labels[u])),
                    "n_train": len(mine), "history": history, "held_out": held_text, "lists": lists})
    return out


def _example_models(runs: list[Any], table: pd.DataFrame) -> list[Any]:
    """Popularity, the best model of each family under full ranking, then the next best overall."""
    col = FULL
    chosen: list[str] = [n for n in table.index if n == "Popularity" or table.at[n, "family"] == "baseline"][:1]
    for fam in family_order(table["family"].tolist()):
        if fam == "baseline":
            continue
        sub = table[table["family"] == fam]
        if len(sub):
            chosen.append(str(sub[col].idxmax()))
    for n in table[col].sort_values(ascending=False).index:
        if len(chosen) >= EXAMPLE_MODELS:
            break
        if n not in chosen:
            chosen.append(str(n))
    by_name = {r.name: r for r in runs}
    return [by_name[n] for n in chosen if by_name[n].top10 is not None]


def _top10_of(run: Any, user: int) -> list[int]:
    users, items = run.top10
    pos = np.searchsorted(users, user)
    return items[pos].tolist() if pos < len(users) and users[pos] == user else []


def _similar(dataset: Dataset, query: str | None) -> dict[str, Any] | None:
    if not query or dataset.catalog is None:
        return None
    from movierec.similar import similar_movies

    out = {}
    try:
        for measure in ("dot", "cosine", "euclidean"):
            df = similar_movies(dataset, query, measure=measure, features="weighted-genres", k=10)
            out[measure] = [{"title": r.title, "genres": str(r.genres).replace("|", ", "), "score": float(r.score)}
                            for r in df.itertuples()]
    except MovieRecError as e:
        return {"query": query, "error": str(e)}
    q = df.attrs.get("query", {})
    return {"query": q.get("title", query) if isinstance(q, dict) else str(q),
            "query_genres": str(q.get("genres", "")).replace("|", ", ") if isinstance(q, dict) else "",
            "lists": out}


def write_report(out: Path, dataset: Dataset, split: Split, eda: dict[str, Any], seg: Any, runs: list[Any],
                 per_segment: dict[str, pd.DataFrame], examples: np.ndarray, context: dict[str, Any]) -> Path:
    """Render report.html (and study.json with the numbers behind it) into ``out``.

    study.json's "pairwise" lists every paired test between two models with its raw and adjusted p-value
    (:func:`movierec.study.conclusions.pairwise_tests`); the page's conclusions call a difference only when
    its adjusted p-value is below the alpha stated on the page.

    study.json also records what this run of the study reused from an earlier one ("reused": run names),
    what it retrained instead and why ("retrained": {run name: reason}), and the EDA's fate ("eda")."""
    from movierec.segments import segment_names

    table, se = comparison_table(runs)
    fig_dir = out / "figures"
    figures = [
        _figure("Accuracy under both protocols", fig_dir / "accuracy",
                lambda path, narrow: charts.accuracy_chart(table, se, path, narrow),
                "HR@10 and NDCG@10 of the held-out movie, per model; colour gives the model family."),
        _figure("Beyond accuracy", fig_dir / "beyond", lambda path, narrow: charts.beyond_chart(table, path, narrow),
                "Catalogue coverage, intra-list genre diversity, novelty and the Gini index of the top-10 lists."),
    ]
    scatter = None
    if SAMPLED in table and FULL in table:
        scatter = _figure("Sampled-100 against full ranking", fig_dir / "protocols",
                          lambda path, narrow: charts.protocol_scatter(table, path, narrow),
                          "Each dot is a model, numbered as in the key; a protocol that agreed with the other "
                          "would put them on a rising line, in the same order.") | {"key": charts.scatter_key(table)}
    names = segment_names(seg.profiles)
    seg_figures = [_figure(f"NDCG@10 [{p}] by segment", fig_dir / f"segments-{p}",
                           lambda path, narrow, t=t, p=p: charts.segment_heatmap(t, names, p, path, narrow),
                           "Mean per-user NDCG@10 of each model within each segment; 'all' is every evaluated user.")
                   for p, t in per_segment.items() if p == "full"]
    settings = {r.name: r.settings for r in runs}
    model_class = {r.name: r.model for r in runs}
    per_user = {r.name: r.per_user for r in runs}
    tests = pairwise_tests(per_user, tested_columns(table))
    facts = conclusions(table, per_user, settings, model_class, per_segment, names, tests, split.protocol)
    families = [{**f, "against": f["against_best"].words() if f["against_best"] is not None else "",
                 "level": f["against_best"] is not None and not f["against_best"].significant}
                for f in (best_per_family(table, tests) if FULL in table else [])]
    profiles = [{"name": names[str(s)], **{k: (v.item() if hasattr(v, "item") else v) for k, v in p.items()}}
                for s, p in seg.profiles.iterrows()]
    ctx = {
        **context,
        "title": f"movierec study: {dataset.name}",
        "eda_html": _checked_fragment(eda["html"]),
        "table": _table_context(table),
        "figures": figures,
        "scatter": scatter,
        "families": families,
        "significance": tests.description(),
        "segment_figures": seg_figures,
        "segments": {"k": seg.k, "silhouette": seg.silhouette, "profiles": profiles,
                     "tables": {p: _segment_rows(t, names) for p, t in per_segment.items()}},
        "examples": _examples(dataset, split, runs, examples, seg.labels, names, table),
        "similar": _similar(dataset, context["config"].get("study", {}).get("similar")),
        "conclusions": facts,
        "split_note": SPLIT_NOTES.get(split.protocol, f"Split: {split.protocol}.") + (
            " " + TEST_INPUT_NOTE[bool(context.get("refit"))] if split.protocol == "loo" else ""),
        "config_text": _toml(context["config"]),
    }
    html = template("study.html.j2").render(**ctx)
    pairwise = {"test": "paired t-test over users", "method": tests.method, "alpha": tests.alpha,
                "tests": [{"metric": c, "a": a, "b": b, "diff": t.diff, "se": t.se, "users": t.n, "p": t.p,
                           "p_adjusted": t.p_adj, "significant": t.significant}
                          for (c, a, b), t in tests.tests.items()]}
    atomic_write_text(out / "study.json", json_dumps({k: ctx[k] for k in (
        "dataset", "split", "machine", "created", "seconds", "conclusions", "significance", "reused", "retrained",
        "eda", "fingerprint", "refit", "finals") if k in ctx} | {
        "results": table.reset_index().to_dict("records"), "pairwise": pairwise, "segments": {
            "k": seg.k, "silhouette": seg.silhouette, "profiles": profiles}}))
    return atomic_write_text(out / "report.html", html)


#: markup the EDA template never writes (its data is autoescaped, so data cannot produce a raw "<" either)
_ATTRS = r"""(?:[\s/]+[^\s/"'=<>]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s/"'<>]*))?)*"""  # attributes, quoted values skipped
_FOREIGN_MARKUP = re.compile(r"<\s*/?\s*(?:script|iframe|object|embed|link|meta|base|form|style|svg|math)\b"
                             rf"|<[a-z][a-z0-9]*{_ATTRS}[\s/]+on[a-z]+\s*="
                             rf"|<[a-z][a-z0-9]*{_ATTRS}[\s/]+(?:href|src|action|formaction)\s*=\s*[\"']?\s*"
                             r"(?:javascript|vbscript)\s*:", re.IGNORECASE)


def _checked_fragment(html: str) -> str:
    """The EDA fragment, the one piece of the page embedded as HTML (``|safe``): the pipeline only passes one
    the EDA wrote this run or whose sha256 matches the one it stored; this refuses one that holds markup the EDA
    never writes anyway (a fragment swapped together with its key file)."""
    bad = _FOREIGN_MARKUP.search(html)
    if bad:
        raise MovieRecError(f"eda/fragment.html holds markup the EDA never writes ({bad.group(0)[:40]!r}); "
                            "delete the study's eda/ folder to explore the data again")
    return html


def _segment_rows(t: pd.DataFrame, names: dict[str, str]) -> dict[str, Any]:
    """The per-segment table turned on its side: one row per model, one column per segment (so that more
    models make it longer, not wider); each segment's best model is marked."""
    models = [c for c in t.columns if c != "users"]
    segments = [{"name": names.get(str(s), str(s)), "users": int(n)} for s, n in t["users"].items()]
    top = t[models].max(axis=1)
    rows = [{"name": m, "cells": [{"value": t.at[s, m], "top": bool(t.at[s, m] == top[s])} for s in t.index]}
            for m in models]
    return {"segments": segments, "rows": rows}


def _toml(config: dict[str, Any]) -> str:
    """The configuration as TOML-like text for the report (it is shown, not parsed back)."""
    lines = []
    for key, value in config.items():
        if isinstance(value, list):
            for entry in value:
                lines.append(f"\n[[{key}]]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
        elif isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in value.items()]
    text = "\n".join(lines).strip()
    return text
