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


def study_specs(config: dict[str, Any], overrides: dict[str, Any] | None = None) -> list[RunSpec]:
    """The study's runs as run specs: its split, seed, cutoffs and refit choice for every run; ``overrides``
    (``--set``) over every run that has the setting."""
    st = config.get("study", {})
    return expand_runs(config, overrides, split=st.get("split", "loo"), seed=int(st.get("seed", 42)), ks=STUDY_KS,
                       refit=bool(st.get("refit", True)))


def final_specs(config: dict[str, Any], runs: list[RunResult]) -> list[RunSpec]:
    """The final models a study fits: its best run by NDCG@10 under full ranking, then every run named in
    ``[study] serve``, each with its run's settings and validation choices (nothing held out)."""
    scored = [r for r in runs if isinstance(r.row.get(BEST_BY), int | float) and np.isfinite(r.row[BEST_BY])]
    names = [max(scored, key=lambda r: r.row[BEST_BY]).name] if scored else []
    names += [n for n in config.get("study", {}).get("serve", []) if n not in names]
    by_name = {r.name: r for r in runs}
    return [RunSpec(n, by_name[n].model, by_name[n].fixed_settings, phases=("final",),
                    hardware=by_name[n].spec.hardware) for n in names]


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


@dataclasses.dataclass
class StudyRun:
    """One study in progress: what the steps of :func:`run_study` read and what each adds. ``specs``: the
    study's runs; ``emb_run``: the run whose user vectors join the segmentation features (or None); the fields
    below them are filled in by the steps, in order."""

    dataset: Dataset
    out: Path
    config: dict[str, Any]
    specs: list[RunSpec]
    seg_settings: dict[str, Any]
    emb_run: str | None
    progress: Progress | None = None
    train_progress: Any = False
    t_start: float = dataclasses.field(default_factory=time.perf_counter)
    step: int = 0
    eda: dict[str, Any] = dataclasses.field(default_factory=dict)
    eda_note: str = ""
    split: Split | None = None
    session: Session | None = None
    runs: list[RunResult] = dataclasses.field(default_factory=list)
    reused: list[str] = dataclasses.field(default_factory=list)
    retrained: dict[str, str] = dataclasses.field(default_factory=dict)
    seg: Any = None
    examples: np.ndarray | None = None
    finals: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def settings(self) -> dict[str, Any]:
        """The config's [study] table."""
        return self.config.get("study", {})

    @property
    def seed(self) -> int:
        return int(self.settings.get("seed", 42))

    def tick(self, what: str) -> None:
        """Tell the progress callback that ``what`` starts (steps: the EDA, the split, each run, the segments,
        the final models, the report)."""
        if self.progress:
            self.progress(what, self.step / (len(self.specs) + 5))
        self.step += 1


def check_study(dataset: Dataset, out: Path, config: dict[str, Any], progress: Progress | None,
                train_progress: Any, overrides: dict[str, Any] | None = None) -> StudyRun:
    """Step 0: refuse, before any work, a config whose runs would share a folder or whose [segments] it cannot
    read; the study's state otherwise."""
    validate_config(config, "study")
    specs = study_specs(config, overrides)
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
    return StudyRun(dataset, out, config, specs, seg_settings, emb_run, progress, train_progress)


def explore(study: StudyRun) -> None:
    """Step 1: the EDA into ``eda/`` (reused when its key matches and its fragment is the one it wrote); its
    page fragment becomes the report's "The data"."""
    from movierec.eda import eda_fragment, run_eda

    eda_dir = study.out / "eda"
    fragment = eda_dir / "fragment.html"
    eda_sample = int(study.settings.get("eda_sample", 1_000_000))
    eda_key = eda_key_of(study.dataset, study.seed, eda_sample)
    eda_reason = _eda_reason(eda_dir, eda_key)
    fragment_text = None
    if eda_reason == "":  # the cached fragment is embedded unescaped: only when it is exactly what the EDA wrote
        fragment_text = _verified_fragment(eda_dir)
        if fragment_text is None:
            eda_reason = "its fragment.html does not match the hash stored in key.json"
    study.tick(f"exploring the data again: {eda_reason}" if eda_reason else "exploring the data")
    if eda_reason != "":
        (eda_dir / "key.json").unlink(missing_ok=True)
        (eda_dir / "key.txt").unlink(missing_ok=True)  # the key file of earlier versions
        report = run_eda(study.dataset, eda_dir, seed=study.seed, sample=eda_sample)
        fragment_text = eda_fragment(report, embed=True)
        atomic_write_text(fragment, fragment_text)
        # last: the EDA of exactly this data finished (with the hash of the fragment it wrote)
        atomic_write_text(eda_dir / "key.json", json.dumps({"key": eda_key, "key_hash": key_hash(eda_key),
                                                            "fragment_sha256": _sha256(fragment_text)},
                                                           indent=2, default=str))
    # the EDA's sections become subsections of the report's "The data"
    html = fragment_text.replace("<h3", "<h4").replace("</h3>", "</h4>")
    html = html.replace("<h2", "<h3").replace("</h2>", "</h3>")
    study.eda = {"summary": json.loads((eda_dir / "summary.json").read_text()), "html": html}
    study.eda_note = "reused" if eda_reason == "" else "ran" if eda_reason is None else f"ran again: {eda_reason}"


def split_data(study: StudyRun) -> None:
    """Step 2: the split every run uses, saved in ``split/`` (a served model never recommends a user's held-out
    movies)."""
    study.tick("splitting")
    study.split = make_split(study.dataset, study.settings.get("split", "loo"), study.seed)
    study.split.save(study.out / "split")
    study.session = Session(study.dataset, study.split, root=study.out,
                            save_models=bool(study.settings.get("save_models", True)))


def train_runs(study: StudyRun) -> None:
    """Step 3: every run through the engine (reused when its stored result's key matches); only what a later
    hybrid or the segments use stays in memory."""
    parts = {spec.settings.get(k) for spec in study.specs for k in ("a", "b") if spec.model.startswith("hybrid")}

    def started(spec: RunSpec, note: str) -> None:
        if note.startswith("retrained: "):
            study.retrained[spec.name] = note.removeprefix("retrained: ")
            study.tick(f"{spec.name}: retraining, {study.retrained[spec.name]}")
        else:
            study.tick(f"training {spec.name}")

    for spec in study.specs:
        done = study.session.execute(spec, progress=study.train_progress, on_start=started)
        if done.note == REUSED:
            study.tick(f"reusing {spec.name} (finished earlier)")
            study.reused.append(spec.name)
        elif spec.model not in parts and spec.name != study.emb_run:
            study.session.forget(done)  # keep in memory only what a later hybrid or the segments use
        study.runs.append(done)


def segment(study: StudyRun) -> None:
    """Step 4: the users' segments (k-means over taste and behaviour, plus a run's user vectors when asked) and
    the example users the report shows, spread over the segments."""
    from movierec.segments import segment_users

    study.tick("segmenting users")
    emb = (_run_user_embeddings(next(r for r in study.runs if r.name == study.emb_run), study.out)
           if study.emb_run else None)
    study.seg = segment_users(study.split.train, study.dataset.catalog,
                              SegmentConfig(seed=study.seed, **study.seg_settings), emb)
    study.examples = pick_example_users(study.seg.labels, study.split, int(study.settings.get("examples", 3)),
                                        study.seed)


def fit_finals(study: StudyRun) -> None:
    """Step 5: the final models to serve, on every interaction, each like its evaluated run (``final/``)."""
    study.tick("fitting the final models")
    by_name = {r.name: r for r in study.runs}
    for spec in final_specs(study.config, study.runs):
        final = study.session.execute(spec, progress=study.train_progress, like=by_name[spec.name])
        study.finals.append({"name": spec.name, "model": spec.model, "folder": f"final/{slug(spec.name)}",
                             "fit_seconds": final.row.get("fit_seconds"), "note": final.note})
        study.session.forget(final)


def write_outputs(study: StudyRun) -> dict[str, Any]:
    """Step 6: the comparison table, the segments' tables and report.html (with study.json); the report's
    context."""
    from movierec.segments import per_segment_metrics
    from movierec.study.page import write_report

    study.tick("writing the report")
    runs = study.runs
    write_comparison([r.row for r in runs], study.out)
    per_segment = {}
    for protocol in ("full", "sampled-100"):
        col = column("NDCG@10", protocol)
        per_user = {r.name: r.per_user[col] for r in runs if col in r.per_user}
        if per_user:
            per_segment[protocol] = per_segment_metrics(study.seg.labels, per_user)
    _write_segments(study.out / "segments", study.dataset, study.seg, per_segment)
    context = {
        "dataset": study.dataset.info(), "split": study.split.summary(), "config": study.config,
        "machine": machine_info(), "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - study.t_start, 1), "reused": study.reused,
        "retrained": study.retrained, "eda": study.eda_note, "fingerprint": study.dataset.fingerprint(),
        "fit_seconds_total": round(sum(r.row["fit_seconds"] for r in runs), 1),
        "segment_embeddings": study.emb_run, "refit": bool(study.settings.get("refit", True)),
        "finals": study.finals,
    }
    write_report(study.out, study.dataset, study.split, study.eda, study.seg, runs, per_segment, study.examples,
                 context)
    return context


#: the study's steps after its check, in order
STEPS: list[Callable[[StudyRun], Any]] = [explore, split_data, train_runs, segment, fit_finals, write_outputs]


def run_study(dataset: Dataset, out: str | Path, config: dict[str, Any] | None = None,
              progress: Progress | None = None, train_progress: Any = False,
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the whole study into ``out`` and return the report's context (also written as study.json): the
    check, then each of :data:`STEPS`.

    progress(step, fraction done) is called before each step; train_progress is passed to the neural models'
    training loop (False, True, or a running ``rich.progress.Progress`` to add each model's epoch bar to);
    ``overrides``: ``--set`` settings over every run that has them (e.g. ``{"epochs": 1}`` for a quick try).
    """
    out = Path(out)
    study = check_study(dataset, out, config or default_config(), progress, train_progress, overrides)
    out.mkdir(parents=True, exist_ok=True)
    context: dict[str, Any] = {}
    for step in STEPS:
        context = step(study) or context
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
