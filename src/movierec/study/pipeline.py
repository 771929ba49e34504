"""``movierec study``: explore the data, split it, train the study's models, evaluate them under both
protocols, segment the users, and write ``report.html``.

Output folder::

    eda/                 the EDA report (eda.html, figures/, tables/, summary.json)
    split/               the split every model was trained and evaluated on (split.json, split.safetensors)
    runs/<slug>/         one folder per model: result.json (written last: the run is done),
                         per_user.parquet (per-user HR/NDCG@10 under both protocols), model/ (bundle)
    segments/            segments.parquet (userId, segment), profiles.csv, per_segment.csv
    figures/             the study's charts (PNG)
    results.csv|md|json  the comparison table
    report.html          everything above in one self-contained page

A run interrupted and started again reuses every step that finished (the EDA, each model's result,
and an NCF model's per-epoch checkpoints), but only where nothing it depends on changed: the data's
content fingerprint, the model's complete settings, the split, the cutoffs and the movierec version
(see :func:`movierec.experiments.run_key`). A stored result that is not reused is retrained, and the
progress step and ``study.json`` ("reused", "retrained") say why.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import json
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec import __version__
from movierec.artifacts import save_bundle
from movierec.comparison import json_dumps, write_comparison
from movierec.data.dataset import Dataset
from movierec.data.splits import Split, make_split
from movierec.errors import MovieRecError
from movierec.evaluation import EvalResult, evaluate
from movierec.experiments import KEY_FORMAT, _slug, expand_runs, key_hash, load_config, stale_reason, validate_config
from movierec.experiments import data_key as _experiment_data_key
from movierec.experiments import run_key as _experiment_run_key
from movierec.fitting import fit_model
from movierec.fsutil import atomic_write_bytes, atomic_write_parquet, atomic_write_text
from movierec.models import RunContext, family_of
from movierec.run_folders import evaluate_test, item_genre_features, protocol_columns, rating_scale
from movierec.segments import SegmentConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PER_USER = ("HR@10", "NDCG@10")
Progress = Callable[[str, float], None]  # (step description, fraction of the study done)


@dataclass
class RunResult:
    """One model's outcome: ``row`` (the comparison-table row), its settings, per-user values and top-10 lists.

    per_user: DataFrame indexed by user index with columns like ``NDCG@10 [full]``;
    top10: (users int64 [n], items int64 [n, 10]) every evaluated user's full-ranking top 10.
    """

    name: str
    model: str
    family: str
    row: dict[str, Any]
    per_user: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    top10: tuple[np.ndarray, np.ndarray] | None = None
    fitted: Any = field(default=None, repr=False)  # the fitted model when trained in this process


def default_config() -> dict[str, Any]:
    """The study's own configuration (configs/study.toml, shipped inside the package as a fallback)."""
    from importlib.resources import files

    return tomllib.loads(files("movierec.study").joinpath("study.toml").read_text())


def resolve_config(path: str | Path | None) -> dict[str, Any]:
    return default_config() if path is None else load_config(path)


def _eval_result_frame(results: dict[str, EvalResult]) -> pd.DataFrame:
    frames = []
    for protocol, res in results.items():
        cols = {f"{m} [{protocol}]": res.per_user[m] for m in PER_USER if m in res.per_user}
        frames.append(pd.DataFrame(cols, index=pd.Index(res.users.astype(np.int64), name="user")))
    return pd.concat(frames, axis=1)


STUDY_KS = (1, 5, 10, 20)
"""The cutoffs every study run is evaluated at."""


def data_key(dataset: Dataset, split: Split) -> dict[str, Any]:
    """What a finished result depends on besides the model: the data's name and content fingerprint (not its
    path or sizes), the split and the movierec version (:func:`movierec.experiments.data_key`)."""
    return _experiment_data_key(dataset, split)


def run_key(spec: Any, base: dict[str, Any]) -> dict[str, Any]:
    """A finished run is reused only when this key matches: run name, model, complete settings (defaults
    included), the study's cutoffs, and ``base`` (data fingerprint, split, version; :func:`data_key`)."""
    return _experiment_run_key(spec, base, STUDY_KS)


def _key_hash(key: dict[str, Any]) -> str:
    return key_hash(key)


def _stored_reason(folder: Path, key: dict[str, Any]) -> str | None:
    """None when ``folder`` holds no finished result, else why it is not reused ("" when it is)."""
    done = folder / "result.json"
    if not done.exists():
        return None
    try:
        meta = json.loads(done.read_text())
    except (OSError, ValueError):
        return "its stored result is unreadable"
    reason = stale_reason(meta.get("key") if isinstance(meta, dict) else None, key)
    if not reason and meta.get("key_hash") != _key_hash(key):
        reason = "its stored result's key does not match its hash"
    return reason


def _load_done(folder: Path, name: str, key: dict[str, Any]) -> RunResult | None:
    """The run's stored result if it finished with exactly this key, else None (see :func:`_stored_reason`)."""
    if _stored_reason(folder, key) != "":
        return None
    meta = json.loads((folder / "result.json").read_text())
    per_user = pd.read_parquet(folder / "per_user.parquet").set_index("user")
    top10 = None
    if (folder / "top10.npz").exists():
        with np.load(folder / "top10.npz", allow_pickle=False) as z:
            top10 = (z["users"], z["items"])
    # metrics stored as null (NaN in JSON is not strict JSON) come back as NaN
    row = {k: float("nan") if v is None else v for k, v in meta["row"].items()}
    return RunResult(name, meta["model_class"], meta["family"], row, per_user, meta.get("settings", {}), top10)


def train_and_evaluate(spec: Any, dataset: Dataset, split: Split, folder: Path, feats: np.ndarray | None,
                       save_model: bool, train_progress: Any,
                       fitted: dict[str, Any] | None = None, key: dict[str, Any] | None = None) -> RunResult:
    """Fit one model of the study, evaluate it under both protocols and persist its results in ``folder``.

    ``fitted``: {run name: model} this study already trained; a hybrid reuses those that match its parts
    exactly. ``key``: what the result depends on (stored, so a restart reuses it only if nothing changed).
    """
    key = key or {}
    (folder / "result.json").unlink(missing_ok=True)  # from here on the folder holds no finished result
    ckpt = folder.parent / f"{folder.name}.{_key_hash(key)}.ckpt"  # other settings never resume it
    for stale in folder.parent.glob(f"{glob.escape(folder.name)}.*.ckpt"):
        if stale != ckpt:
            shutil.rmtree(stale, ignore_errors=True)
    context = RunContext(checkpoint_dir=ckpt, resume=True, progress=train_progress,
                         prefitted=list((fitted or {}).values()))
    model, report = fit_model(spec.model, spec.settings, split, dataset.catalog, context, f"run {spec.name!r}")
    fit_seconds = report.seconds
    row: dict[str, Any] = {"model": spec.name, "family": family_of(spec.model), **report.row()}
    chosen = {k: row.pop(k) for k in list(row) if k.removeprefix("tuned_") in report.chosen}
    if model.parts():
        # the study's runs that served as this hybrid's parts (by name), for the report and the conclusions
        row["reused_parts"] = [name for part in model.parts() for name, m in (fitted or {}).items() if m is part]
    row.update(chosen)
    if split.valid is not None and split.valid.negatives is not None:
        valid = evaluate(model, split, "sampled-100", "valid", (10,))
        row["NDCG@10 [sampled-100, valid]"] = valid.metrics["NDCG@10"]
    results, seconds = evaluate_test(model, split, STUDY_KS, feats)
    row.update(protocol_columns(results, seconds))
    full = results.get("full")
    top10 = None
    per_user = _eval_result_frame(results)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(folder / "per_user.parquet", per_user.reset_index())
    if full is not None and full.recs is not None:
        order = np.argsort(full.users, kind="stable")  # sorted, for lookups by user
        top10 = (full.users[order].astype(np.int64), full.recs[order, :10].astype(np.int64))
        buf = io.BytesIO()
        np.savez(buf, users=top10[0], items=top10[1])
        atomic_write_bytes(folder / "top10.npz", buf.getvalue())
    if save_model:
        save_bundle(folder / "model", model, dataset.users, dataset.items, dataset.catalog,
                    {"name": dataset.name, "source": dataset.source, **split.summary(),
                     "rating_scale": rating_scale(dataset)},
                    metrics={"test": {p: r.metrics for p, r in results.items()}, "fit_seconds": fit_seconds},
                    train_log=report.train_log)
    meta = {"name": spec.name, "model_class": spec.model, "family": row["family"], "settings": spec.settings,
            "key": key, "key_hash": _key_hash(key), "row": row}
    atomic_write_text(folder / "result.json", json_dumps(meta))  # last: marks the run done
    shutil.rmtree(ckpt, ignore_errors=True)
    return RunResult(spec.name, spec.model, row["family"], row, per_user, spec.settings, top10, model)


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
    specs = expand_runs(config)
    if not specs:
        raise MovieRecError("the study config lists no [[run]]")
    slugs: dict[str, str] = {}
    for spec in specs:
        other = slugs.setdefault(_slug(spec.name), spec.name)
        if other != spec.name:
            raise MovieRecError(f"runs {other!r} and {spec.name!r} would share the folder runs/{_slug(spec.name)}; "
                                "rename one")
    seg_settings = dict(config.get("segments", {}))
    emb_run = seg_settings.pop("embeddings", None)  # a run whose learned user vectors join the features
    unknown = set(seg_settings) - {f.name for f in dataclasses.fields(SegmentConfig)} | ({"seed"} & set(seg_settings))
    if unknown:
        raise MovieRecError(f"[segments] has unknown setting(s) {sorted(unknown)} (k_min, k_max, silhouette_sample, "
                            "n_init, embeddings; the seed is [study] seed)")
    if emb_run is not None and emb_run not in {spec.name for spec in specs}:
        raise MovieRecError(f"[segments] embeddings = {emb_run!r} is not the name of a [[run]]")
    n_steps = len(specs) + 4
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
        atomic_write_text(eda_dir / "key.json", json.dumps({"key": eda_key, "key_hash": _key_hash(eda_key),
                                                            "fragment_sha256": _sha256(fragment_text)},
                                                           indent=2, default=str))
    # the EDA's sections become subsections of the report's "The data"
    html = fragment_text.replace("<h3", "<h4").replace("</h3>", "</h4>")
    html = html.replace("<h2", "<h3").replace("</h2>", "</h3>")
    eda = {"summary": json.loads((eda_dir / "summary.json").read_text()), "html": html}

    tick("splitting")
    split = make_split(dataset, st.get("split", "loo"), seed)
    split.save(out / "split")  # a served model of this study never recommends a user's held-out movies
    feats = item_genre_features(dataset)

    runs: list[RunResult] = []
    reused: list[str] = []
    retrained: dict[str, str] = {}
    parts = {spec.settings.get(k) for spec in specs for k in ("a", "b") if spec.model.startswith("hybrid")}
    base = data_key(dataset, split)
    for spec in specs:
        folder = out / "runs" / _slug(spec.name)
        key = run_key(spec, base)
        reason = _stored_reason(folder, key)
        done = _load_done(folder, spec.name, key) if reason == "" else None
        if done is None:
            if reason:
                retrained[spec.name] = reason
                tick(f"{spec.name}: retraining, {reason}")
            else:
                tick(f"training {spec.name}")
            done = train_and_evaluate(spec, dataset, split, folder, feats,
                                      bool(st.get("save_models", True)), train_progress,
                                      {r.name: r.fitted for r in runs if r.fitted is not None}, key)
            if spec.model not in parts and spec.name != emb_run:
                done.fitted = None  # keep in memory only what a later hybrid or the segments use
        else:
            tick(f"reusing {spec.name} (finished earlier)")
            reused.append(spec.name)
            done.settings = spec.settings  # as written now (the same complete settings)
        runs.append(done)

    tick("segmenting users")
    emb = _run_user_embeddings(next(r for r in runs if r.name == emb_run), out) if emb_run else None
    seg = segment_users(split.train, dataset.catalog, SegmentConfig(seed=seed, **seg_settings), emb)
    examples = pick_example_users(seg.labels, split, int(st.get("examples", 3)), seed)

    tick("writing the report")
    rows = [r.row for r in runs]
    write_comparison(rows, out)
    per_segment = {}
    for protocol in ("full", "sampled-100"):
        col = f"NDCG@10 [{protocol}]"
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
    if not reason and stored.get("key_hash") != _key_hash(key):
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
        bundle = out / "runs" / _slug(run.name) / "model"
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
        atomic_write_text(folder / f"per_segment_ndcg10_{protocol}.csv", table.to_csv())
