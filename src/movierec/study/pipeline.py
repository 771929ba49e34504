"""``movierec study``: explore the data, split it, do the study's runs (the run engine, :mod:`movierec.runs`),
segment the users, write ``report.html``, and fit the final models to serve.

Output folder::

    eda/                 the EDA report (eda.html, figures/, tables/, summary.json)
    split/               the split every model was trained and evaluated on (split.json, split.safetensors)
    runs/<slug>/         one folder per run (:mod:`movierec.runs.store`): result.json, per_user.parquet
                         (per-user HR/NDCG@10 under both protocols), top10.npz, model/ (the bundle the test read)
    final/<slug>/        the final models (fitted on every interaction with their run's settings and validation
                         choices): the best run by NDCG@10 under full ranking and every run in [study] serve
    segments/            segments.parquet (userId, segment), profiles.csv, per_segment.csv
    figures/             the study's charts (PNG)
    results.csv|md|json  the comparison table
    report.html          everything above in one self-contained page

A run interrupted and started again reuses every step that finished (the EDA, each run, each final model,
and a model's per-epoch checkpoints), but only where nothing it depends on changed: the data's content
fingerprint, the model's complete settings, the split, the cutoffs, the test input and the movierec version
(see :func:`movierec.runs.run_key`). A stored result that is not reused is done again, and the progress step
and ``study.json`` ("reused", "retrained") say why.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec import __version__
from movierec.comparison import write_comparison
from movierec.data.dataset import Dataset
from movierec.data.splits import Split, make_split
from movierec.errors import MovieRecError
from movierec.evaluation.columns import column
from movierec.fsutil import atomic_write_text, csv_text, read_toml
from movierec.runs import REUSED, RunResult, RunSpec, Session, expand_runs, slug, validate_config
from movierec.runs.store import KEY_FORMAT, key_hash, stale_reason
from movierec.segments import SegmentConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Progress = Callable[[str, float], None]  # (step description, fraction of the study done)

STUDY_KS = (1, 5, 10, 20)
"""The cutoffs every study run is evaluated at."""

BEST_BY = column("NDCG@10", "full")
"""The column the study's best model is chosen by (the one it serves first)."""


def default_config() -> dict[str, Any]:
    """The study's own configuration (configs/study.toml, shipped inside the package as a fallback)."""
    from importlib.resources import files

    return tomllib.loads(files("movierec.study").joinpath("study.toml").read_text())


def resolve_config(path: str | Path | None) -> dict[str, Any]:
    return default_config() if path is None else read_toml(path)


def study_specs(config: dict[str, Any]) -> list[RunSpec]:
    """The study's runs as run specs: its split, seed, cutoffs and refit choice for every run."""
    st = config.get("study", {})
    return expand_runs(config, split=st.get("split", "loo"), seed=int(st.get("seed", 42)), ks=STUDY_KS,
                       refit=bool(st.get("refit", True)))


def final_specs(config: dict[str, Any], runs: list[RunResult]) -> list[RunSpec]:
    """The final models a study fits: its best run by NDCG@10 under full ranking, then every run named in
    ``[study] serve``, each with its run's settings and validation choices (nothing held out)."""
    scored = [r for r in runs if isinstance(r.row.get(BEST_BY), int | float) and np.isfinite(r.row[BEST_BY])]
    names = [max(scored, key=lambda r: r.row[BEST_BY]).name] if scored else []
    names += [n for n in config.get("study", {}).get("serve", []) if n not in names]
    by_name = {r.name: r for r in runs}
    return [RunSpec(n, by_name[n].model, by_name[n].fixed_settings, phases=("final",)) for n in names]


def pick_example_users(labels: np.ndarray, split: Split, n: int, seed: int) -> np.ndarray:
    """``n`` evaluated users, spread over the segments (round robin, largest segment first), seeded."""
    rng = np.random.default_rng(seed)
    evaluated = np.unique(split.test.user)
    counts = np.bincount(split.train.user, minlength=split.train.n_users)
    evaluated = evaluated[(counts[evaluated] >= 15) & (counts[evaluated] <= 400)]  # a readable history
    by_seg = [rng.permutation(evaluated[labels[evaluated] == s]) for s in range(max(labels.max() + 1, 1))]
    picked: list[int] = []
    depth = 0
    while len(picked) < n and any(depth < len(b) for b in by_seg):
        picked += [int(b[depth]) for b in by_seg if depth < len(b)]
        depth += 1
    return np.array(picked[:n], dtype=np.int64)


def machine_info() -> dict[str, str]:
    import os

    return {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "cpus": str(os.cpu_count()), "processor": platform.machine()}


def run_study(dataset: Dataset, out: str | Path, config: dict[str, Any] | None = None,
              progress: Progress | None = None, train_progress: Any = False) -> dict[str, Any]:
    """Run the whole study into ``out`` and return the report's context (also written as study.json).

    progress(step, fraction done) is called before each step; train_progress is passed to the neural models'
    training loop (False, True, or a running ``rich.progress.Progress`` to add each model's epoch bar to).
    """
    from movierec.eda import eda_fragment, run_eda
    from movierec.segments import per_segment_metrics, segment_users
    from movierec.study.page import write_report

    config = config or default_config()
    validate_config(config, "study")
    st = config.get("study", {})
    seed = int(st.get("seed", 42))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = study_specs(config)
    if not specs:
        raise MovieRecError("the study config lists no [[run]]")
    slugs: dict[str, str] = {}
    for spec in specs:
        other = slugs.setdefault(slug(spec.name), spec.name)
        if other != spec.name:
            raise MovieRecError(f"runs {other!r} and {spec.name!r} would share the folder runs/{slug(spec.name)}; "
                                "rename one")
    seg_settings = dict(config.get("segments", {}))
    emb_run = seg_settings.pop("embeddings", None)  # a run whose learned user vectors join the features
    unknown = set(seg_settings) - {f.name for f in dataclasses.fields(SegmentConfig)} | ({"seed"} & set(seg_settings))
    if unknown:
        raise MovieRecError(f"[segments] has unknown setting(s) {sorted(unknown)} (k_min, k_max, silhouette_sample, "
                            "n_init, embeddings; the seed is [study] seed)")
    if emb_run is not None and emb_run not in {spec.name for spec in specs}:
        raise MovieRecError(f"[segments] embeddings = {emb_run!r} is not the name of a [[run]]")
    n_steps = len(specs) + 5
    step = 0
    t_start = time.perf_counter()

    def tick(what: str) -> None:
        nonlocal step
        if progress:
            progress(what, step / n_steps)
        step += 1

    eda_dir = out / "eda"
    fragment = eda_dir / "fragment.html"
    eda_sample = int(st.get("eda_sample", 1_000_000))
    eda_key = eda_key_of(dataset, seed, eda_sample)
    eda_reason = _eda_reason(eda_dir, eda_key)
    fragment_text = None
    if eda_reason == "":  # the cached fragment is embedded unescaped: only when it is exactly what the EDA wrote
        fragment_text = _verified_fragment(eda_dir)
        if fragment_text is None:
            eda_reason = "its fragment.html does not match the hash stored in key.json"
    tick(f"exploring the data again: {eda_reason}" if eda_reason else "exploring the data")
    if eda_reason != "":
        (eda_dir / "key.json").unlink(missing_ok=True)
        (eda_dir / "key.txt").unlink(missing_ok=True)  # the key file of earlier versions
        report = run_eda(dataset, eda_dir, seed=seed, sample=eda_sample)
        fragment_text = eda_fragment(report, embed=True)
        atomic_write_text(fragment, fragment_text)
        # last: the EDA of exactly this data finished (with the hash of the fragment it wrote)
        atomic_write_text(eda_dir / "key.json", json.dumps({"key": eda_key, "key_hash": key_hash(eda_key),
                                                            "fragment_sha256": _sha256(fragment_text)},
                                                           indent=2, default=str))
    # the EDA's sections become subsections of the report's "The data"
    html = fragment_text.replace("<h3", "<h4").replace("</h3>", "</h4>")
    html = html.replace("<h2", "<h3").replace("</h2>", "</h3>")
    eda = {"summary": json.loads((eda_dir / "summary.json").read_text()), "html": html}

    tick("splitting")
    split = make_split(dataset, st.get("split", "loo"), seed)
    split.save(out / "split")  # a served model of this study never recommends a user's held-out movies

    runs: list[RunResult] = []
    reused: list[str] = []
    retrained: dict[str, str] = {}
    parts = {spec.settings.get(k) for spec in specs for k in ("a", "b") if spec.model.startswith("hybrid")}
    session = Session(dataset, split, root=out, save_models=bool(st.get("save_models", True)))

    def started(spec: RunSpec, note: str) -> None:
        if note.startswith("retrained: "):
            retrained[spec.name] = note.removeprefix("retrained: ")
            tick(f"{spec.name}: retraining, {retrained[spec.name]}")
        else:
            tick(f"training {spec.name}")

    for spec in specs:
        done = session.execute(spec, progress=train_progress, on_start=started)
        if done.note == REUSED:
            tick(f"reusing {spec.name} (finished earlier)")
            reused.append(spec.name)
        elif spec.model not in parts and spec.name != emb_run:
            session.forget(done)  # keep in memory only what a later hybrid or the segments use
        runs.append(done)

    tick("segmenting users")
    emb = _run_user_embeddings(next(r for r in runs if r.name == emb_run), out) if emb_run else None
    seg = segment_users(split.train, dataset.catalog, SegmentConfig(seed=seed, **seg_settings), emb)
    examples = pick_example_users(seg.labels, split, int(st.get("examples", 3)), seed)

    tick("fitting the final models")
    finals = []
    by_name = {r.name: r for r in runs}
    for spec in final_specs(config, runs):
        final = session.execute(spec, progress=train_progress, like=by_name[spec.name])
        finals.append({"name": spec.name, "model": spec.model, "folder": f"final/{slug(spec.name)}",
                       "fit_seconds": final.row.get("fit_seconds"), "note": final.note})
        session.forget(final)

    tick("writing the report")
    rows = [r.row for r in runs]
    write_comparison(rows, out)
    per_segment = {}
    for protocol in ("full", "sampled-100"):
        col = column("NDCG@10", protocol)
        per_user = {r.name: r.per_user[col] for r in runs if col in r.per_user}
        if per_user:
            per_segment[protocol] = per_segment_metrics(seg.labels, per_user)
    _write_segments(out / "segments", dataset, seg, per_segment)
    context = {
        "dataset": dataset.info(), "split": split.summary(), "config": config, "machine": machine_info(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - t_start, 1), "reused": reused, "retrained": retrained,
        "eda": "reused" if eda_reason == "" else "ran" if eda_reason is None else f"ran again: {eda_reason}",
        "fingerprint": dataset.fingerprint(),
        "fit_seconds_total": round(sum(r.row["fit_seconds"] for r in runs), 1), "segment_embeddings": emb_run,
        "refit": bool(st.get("refit", True)), "finals": finals,
    }
    write_report(out, dataset, split, eda, seg, runs, per_segment, examples, context)
    if progress:
        progress("done", 1.0)
    return context


def eda_key_of(dataset: Dataset, seed: int, sample: int) -> dict[str, Any]:
    """What the study's EDA depends on: the data's name and content fingerprint, the seed, the sample size
    and the movierec version. The EDA is reused only when ``eda/key.json`` holds exactly this key."""
    return {"format": KEY_FORMAT, "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint()},
            "seed": seed, "sample": sample, "version": __version__}


def _eda_reason(eda_dir: Path, key: dict[str, Any]) -> str | None:
    """None when ``eda_dir`` holds no finished EDA, else why it is not reused ("" when it is)."""
    key_file = eda_dir / "key.json"
    if not ((eda_dir / "fragment.html").exists() and (eda_dir / "summary.json").exists()):
        return None
    if not key_file.exists():
        return "it was stored without this version's key" if (eda_dir / "key.txt").exists() else None
    try:
        stored = json.loads(key_file.read_text())
    except (OSError, ValueError):
        return "its stored key is unreadable"
    if not isinstance(stored, dict):
        return "its stored key is unreadable"
    reason = stale_reason(stored.get("key"), key)
    if not reason and stored.get("key_hash") != key_hash(key):
        reason = "its stored key does not match its hash"
    return reason


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _verified_fragment(eda_dir: Path) -> str | None:
    """The text of ``eda/fragment.html`` when its sha256 is the one ``eda/key.json`` stored as the EDA wrote it,
    else None (a fragment edited since, or stored by a version that kept no hash): the report embeds it as
    HTML, so a cached fragment is trusted only as the EDA's own output."""
    try:
        stored = json.loads((eda_dir / "key.json").read_text())
        text = (eda_dir / "fragment.html").read_bytes().decode("utf-8")
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("fragment_sha256") != _sha256(text):
        return None
    return text


def _run_user_embeddings(run: RunResult, out: Path) -> np.ndarray:
    """The learned user vectors of a study run: from the model in memory, else from its saved bundle."""
    from movierec.segments import model_user_embeddings

    model = run.fitted
    if model is None:
        bundle = out / "runs" / slug(run.name) / "model"
        if not (bundle / "config.json").exists():
            raise MovieRecError(f"[segments] embeddings: run {run.name!r} has no saved model to read them from "
                                "(set [study] save_models = true, or start the study in a new folder)")
        from movierec.artifacts import load_bundle

        model = load_bundle(bundle).model
    return model_user_embeddings(model)


def _write_segments(folder: Path, dataset: Dataset, seg: Any, per_segment: dict[str, pd.DataFrame]) -> None:
    from movierec.segments import write_segments

    write_segments(folder, dataset.users.ids, seg)
    for protocol, table in per_segment.items():
        atomic_write_text(folder / f"per_segment_ndcg10_{protocol}.csv", csv_text(table, index=True))
