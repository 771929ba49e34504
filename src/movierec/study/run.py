"""``movierec study``: explore the data, split it, train the study's models, evaluate them under both
protocols, segment the users, and write ``report.html``.

Output folder::

    eda/                 the EDA report (eda.html, figures/, tables/, summary.json)
    runs/<slug>/         one folder per model: result.json (written last: the run is done),
                         per_user.parquet (per-user HR/NDCG@10 under both protocols), model/ (bundle)
    segments/            segments.parquet (userId, segment), profiles.csv, per_segment.csv
    figures/             the study's charts (PNG)
    results.csv|md|json  the comparison table
    report.html          everything above in one self-contained page

A run interrupted and started again reuses every step that finished (the EDA, each model's result,
and an NCF model's per-epoch checkpoints).
"""

from __future__ import annotations

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

from movierec.artifacts import save_bundle
from movierec.data.dataset import Dataset
from movierec.data.splits import Split, make_split
from movierec.errors import MovieRecError
from movierec.evaluation import EvalResult, evaluate
from movierec.experiments import _slug, expand_runs, load_config
from movierec.fsutil import atomic_write_text
from movierec.models import get_model_class
from movierec.reports import write_comparison
from movierec.runs import PROTOCOLS, item_genre_features

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PER_USER = ("HR@10", "NDCG@10")
FAMILY = {"popularity": "baseline", "itemknn": "collaborative", "gmf": "collaborative", "mlp": "collaborative",
          "neumf": "collaborative", "content": "content", "content-neural": "content",
          "neumf-features": "hybrid", "hybrid-blend": "hybrid", "hybrid-switch": "hybrid"}
Progress = Callable[[str, float], None]  # (step description, fraction of the study done)


@dataclass
class RunResult:
    """One model's outcome: ``row`` (the comparison-table row), per-user values and example lists.

    per_user: DataFrame indexed by user index with columns like ``NDCG@10 [full]``;
    examples: {user index: top-10 item indices under full ranking}.
    """

    name: str
    model: str
    family: str
    row: dict[str, Any]
    per_user: pd.DataFrame
    examples: dict[int, list[int]] = field(default_factory=dict)
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


def _load_done(folder: Path, name: str) -> RunResult | None:
    done = folder / "result.json"
    if not done.exists():
        return None
    meta = json.loads(done.read_text())
    per_user = pd.read_parquet(folder / "per_user.parquet").set_index("user")
    return RunResult(name, meta["model_class"], meta["family"], meta["row"], per_user,
                     {int(k): v for k, v in meta["examples"].items()})


def train_and_evaluate(spec: Any, dataset: Dataset, split: Split, folder: Path, feats: np.ndarray | None,
                       example_users: np.ndarray, save_model: bool, train_progress: bool,
                       fitted: list[Any] | None = None) -> RunResult:
    """Fit one model of the study, evaluate it under both protocols and persist its results in ``folder``.

    ``fitted``: models this study already trained; a hybrid reuses those that match its parts exactly.
    """
    cls = get_model_class(spec.model)
    model = cls(**spec.settings)
    if hasattr(model, "prefitted") and fitted:
        model.prefitted = fitted
    if hasattr(model, "run_options"):
        model.run_options.update(checkpoint_dir=folder.with_suffix(".ckpt"), resume=True, progress=train_progress)
    t0 = time.perf_counter()
    model.fit(split.train, dataset.catalog, split.valid)
    fit_seconds = time.perf_counter() - t0
    row: dict[str, Any] = {"model": spec.name, "family": FAMILY.get(spec.model, "other"),
                           "fit_seconds": round(fit_seconds, 2)}
    result = getattr(model, "result_", None)
    if result is not None:
        row.update(best_epoch=result.best_epoch, epochs_run=result.epochs_run)
    if fitted and hasattr(model, "prefitted"):
        row["reused_parts"] = [m.name for m in (model.a_, model.b_) if any(m is f for f in fitted)]
    for attr, key in (("weight_", "tuned_weight"), ("threshold_", "tuned_threshold")):
        if hasattr(model, attr):
            row[key] = float(getattr(model, attr))
    if split.valid is not None and split.valid.negatives is not None:
        valid = evaluate(model, split, "sampled-100", "valid", (10,))
        row["NDCG@10 [sampled-100, valid]"] = valid.metrics["NDCG@10"]
    results: dict[str, EvalResult] = {}
    for protocol in PROTOCOLS:
        if protocol == "sampled-100" and split.test.negatives is None:
            continue
        t1 = time.perf_counter()
        results[protocol] = res = evaluate(model, split, protocol, "test", (1, 5, 10, 20), feats)
        row[f"eval_seconds[{protocol}]"] = round(time.perf_counter() - t1, 3)
        row.update({f"{k} [{protocol}]": v for k, v in res.metrics.items()})
    examples: dict[int, list[int]] = {}
    full = results.get("full")
    if full is not None and full.recs is not None:
        pos = {int(u): i for i, u in enumerate(full.users)}
        examples = {int(u): full.recs[pos[int(u)], :10].tolist() for u in example_users if int(u) in pos}
    per_user = _eval_result_frame(results)
    folder.mkdir(parents=True, exist_ok=True)
    per_user.reset_index().to_parquet(folder / "per_user.parquet", index=False)
    if save_model:
        save_bundle(folder / "model", model, dataset.users, dataset.items, dataset.catalog,
                    {"name": dataset.name, "source": dataset.source, **split.summary()},
                    metrics={"test": {p: r.metrics for p, r in results.items()}, "fit_seconds": fit_seconds},
                    train_log=getattr(model, "train_log", None))
    meta = {"name": spec.name, "model_class": spec.model, "family": row["family"], "settings": spec.settings,
            "row": row, "examples": {str(k): v for k, v in examples.items()}}
    atomic_write_text(folder / "result.json", json.dumps(meta, indent=2, default=float))  # last: marks done
    shutil.rmtree(folder.with_suffix(".ckpt"), ignore_errors=True)
    return RunResult(spec.name, spec.model, row["family"], row, per_user, examples, model)


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
              progress: Progress | None = None, train_progress: bool = False) -> dict[str, Any]:
    """Run the whole study into ``out`` and return the report's context (also written as study.json)."""
    from movierec.eda import eda_fragment, run_eda
    from movierec.segments import SegmentConfig, per_segment_metrics, segment_users
    from movierec.study.report import write_report

    config = config or default_config()
    st = config.get("study", {})
    seed = int(st.get("seed", 42))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = expand_runs(config)
    if not specs:
        raise MovieRecError("the study config lists no [[run]]")
    n_steps = len(specs) + 4
    step = 0
    t_start = time.perf_counter()

    def tick(what: str) -> None:
        nonlocal step
        if progress:
            progress(what, step / n_steps)
        step += 1

    tick("exploring the data")
    eda_dir = out / "eda"
    fragment = eda_dir / "fragment.html"
    if not fragment.exists():  # written last: the EDA finished
        report = run_eda(dataset, eda_dir, seed=seed, sample=int(st.get("eda_sample", 1_000_000)))
        atomic_write_text(fragment, eda_fragment(report, embed=True))
    # the EDA's sections become subsections of the report's "The data"
    html = fragment.read_text().replace("<h3", "<h4").replace("</h3>", "</h4>")
    html = html.replace("<h2", "<h3").replace("</h2>", "</h3>")
    eda = {"summary": json.loads((eda_dir / "summary.json").read_text()), "html": html}

    tick("splitting and segmenting users")
    split = make_split(dataset, st.get("split", "loo"), seed)
    seg_cfg = SegmentConfig(seed=seed, **config.get("segments", {}))
    seg = segment_users(split.train, dataset.catalog, seg_cfg)
    feats = item_genre_features(dataset)
    examples = pick_example_users(seg.labels, split, int(st.get("examples", 3)), seed)

    runs: list[RunResult] = []
    reused: list[str] = []
    parts = {spec.settings.get(k) for spec in specs for k in ("a", "b") if spec.model.startswith("hybrid")}
    for spec in specs:
        folder = out / "runs" / _slug(spec.name)
        done = _load_done(folder, spec.name)
        if done is None or not set(examples.tolist()) <= set(done.examples):
            tick(f"training {spec.name}")
            done = train_and_evaluate(spec, dataset, split, folder, feats, examples,
                                      bool(st.get("save_models", True)), train_progress,
                                      [r.fitted for r in runs if r.fitted is not None])
            if spec.model not in parts:
                done.fitted = None  # keep in memory only what a later hybrid may reuse
        else:
            tick(f"reusing {spec.name} (finished earlier)")
            reused.append(spec.name)
        runs.append(done)

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
        "seconds": round(time.perf_counter() - t_start, 1), "reused": reused,
        "fit_seconds_total": round(sum(r.row["fit_seconds"] for r in runs), 1),
    }
    write_report(out, dataset, split, eda, seg, runs, per_segment, examples, context)
    if progress:
        progress("done", 1.0)
    return context


def _write_segments(folder: Path, dataset: Dataset, seg: Any, per_segment: dict[str, pd.DataFrame]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"userId": dataset.users.ids, "segment": seg.labels})
    tmp = folder / ".segments.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    tmp.replace(folder / "segments.parquet")
    atomic_write_text(folder / "profiles.csv", seg.profiles.to_csv())
    for protocol, table in per_segment.items():
        atomic_write_text(folder / f"per_segment_ndcg10_{protocol}.csv", table.to_csv())
