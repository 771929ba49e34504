"""Rewrite the result tables of README.md and docs/results.md from saved results, so no number in them is typed
by hand.

Each table sits in its page (:data:`PAGES`) between marker comments (``<!-- table:NAME -->`` ...
``<!-- /table:NAME -->``) and is rendered, caption included, from one file under docs/results/:

    study.json               the study's results.json (``make run``: out/study-ml-latest-small/)
    content-hybrid.json      the content-hybrid experiment's results.json (out/content-hybrid/)
    similar-toy-story.json   movies like Toy Story under three measures (computed here, from the data)
    peers.json               benchmarks/bench_models.py's results: our strong models beside the peer libraries

Each file holds a copy of the results it was made from plus where, when and on what they were produced
(date, nproc, CPU model, movierec version).

    python scripts/readme_tables.py collect --study out/study-ml-latest-small   # copy results into docs/results
    python scripts/readme_tables.py collect --experiment out/content-hybrid
    python scripts/readme_tables.py collect --models benchmarks/results/bench_models.json
    python scripts/readme_tables.py similar --data ml-latest-small              # recompute the similar movies
    python scripts/readme_tables.py render                                      # rewrite the pages' tables
    python scripts/readme_tables.py render --check                              # exit 1 if a table is stale
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results"

# table name -> the docs/results file it is rendered from
SOURCES = {
    "study": "study.json",
    "similar": "similar-toy-story.json",
    "content-hybrid": "content-hybrid.json",
    "peers": "peers.json",
    "conclusions": "study.json",
}
# table name -> the page it sits in
PAGES = {
    "study": README,
    "conclusions": README,
    "similar": ROOT / "docs" / "results.md",
    "content-hybrid": ROOT / "docs" / "results.md",
    "peers": ROOT / "docs" / "results.md",
}
CONCLUSIONS = 4  # the report's first conclusions shown in the README (the rest are in report.html)

SIMILAR_QUERY = 1  # Toy Story (1995)
SIMILAR_MEASURES = ("dot", "cosine", "euclidean")
SIMILAR_K = 5
SIMILAR_MIN_RATINGS = 5


# ---------------------------------------------------------------------------------------------- metadata

def machine() -> dict[str, Any]:
    """nproc and the CPU model (from /proc/cpuinfo where there is one)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"nproc": nproc, "cpu": cpu}


def version() -> str:
    import movierec

    return movierec.__version__


def _mtime_date(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d")


def _write(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def load(name: str, results_dir: Path = RESULTS) -> dict[str, Any]:
    return json.loads((results_dir / SOURCES[name]).read_text())


# ---------------------------------------------------------------------------------------------- collect

def collect_study(folder: Path, note: str = "") -> Path:
    """Copy a study's results.json into docs/results/study.json with its date, machine and run time."""
    results = json.loads((folder / "results.json").read_text())
    study = json.loads((folder / "study.json").read_text())
    created = str(study.get("created", ""))[:10] or _mtime_date(folder / "results.json")
    return _write(SOURCES["study"], {
        "source": f"{folder.as_posix()}/results.json",
        "date": created,
        "machine": machine(),
        "movierec": version(),
        "dataset": study.get("dataset", {}).get("name", "ml-latest-small"),
        "test_users": study.get("split", {}).get("test"),
        "seconds": study.get("seconds"),
        "refit": study.get("refit"),
        "finals": study.get("finals"),
        **({"note": note} if note else {}),
        "conclusions": study.get("conclusions", []),
        "results": results,
    })


def collect_experiment(folder: Path, note: str = "") -> Path:
    """Copy the content-hybrid experiment's results.json into docs/results/content-hybrid.json."""
    path = folder / "results.json"
    results = json.loads(path.read_text())
    exp = json.loads((folder / "experiment.json").read_text()) if (folder / "experiment.json").exists() else {}
    return _write(SOURCES["content-hybrid"], {
        "source": f"{folder.as_posix()}/results.json",
        "date": _mtime_date(path),
        "machine": machine(),
        "movierec": version(),
        "dataset": exp.get("dataset", {}).get("name", "ml-latest-small"),
        **({"note": note} if note else {}),
        "results": results,
    })


def collect_models(path: Path) -> Path:
    """Copy benchmarks/bench_models.py's JSON (it carries its own date and machine) into docs/results."""
    doc = json.loads(path.read_text())
    return _write(SOURCES["peers"], {"source": path.as_posix(), "date": doc["date"], "machine": machine(),
                                     "movierec": version(), "data": doc["data"], "peers": doc["peers"],
                                     "results": doc["rows"]})


def compute_similar(data: str = "ml-latest-small") -> Path:
    """Movies like Toy Story (weighted genres, movies with at least 5 ratings) under each measure."""
    import movierec
    from movierec.similar import similar_movies

    ds = movierec.load_dataset(data)
    lists = {}
    for measure in SIMILAR_MEASURES:
        df = similar_movies(ds, SIMILAR_QUERY, measure=measure, features="weighted-genres", k=SIMILAR_K,
                            min_ratings=SIMILAR_MIN_RATINGS)
        lists[measure] = [{"rank": int(r["rank"]), "movieId": int(r["movieId"]), "title": str(r["title"]),
                           "score": float(r["score"])} for _, r in df.iterrows()]
    return _write(SOURCES["similar"], {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(),
        "movierec": version(),
        "dataset": data,
        "query": SIMILAR_QUERY,
        "features": "weighted-genres",
        "min_ratings": SIMILAR_MIN_RATINGS,
        "results": lists,
    })


# ---------------------------------------------------------------------------------------------- render

def caption_machine(doc: dict[str, Any]) -> str:
    """'2-core CPU (Intel(R) Xeon(R) Processor), 2026-11-30' from a results file's metadata."""
    cpu = doc["machine"].get("cpu")
    return f"{doc['machine']['nproc']}-core CPU{f' ({cpu})' if cpu else ''}, {doc['date']}"


def _note(doc: dict[str, Any]) -> str:
    """A results file's optional ``note`` (e.g. the machine was shared), as a caption clause."""
    return f"; {doc['note']}" if doc.get("note") else ""


def _caption(text: str) -> list[str]:
    """The caption wrapped like the README's prose (115 columns)."""
    return textwrap.wrap(text, 115, break_on_hyphens=False, break_long_words=False)


def _f(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def render_study(doc: dict[str, Any]) -> str:
    users = doc.get("test_users")
    seconds = doc.get("seconds")
    lines = [
        *_caption(f"The table `make run` got ({doc['dataset']}, leave-one-out, {users} test users, K = 10; "
                  f"{caption_machine(doc)}, {seconds:.0f} s end to end including the EDA; movierec "
                  f"{doc['movierec']}{_note(doc)}):"),
        "",
        "| model | family | HR@10 s100 | NDCG@10 s100 | HR@10 full | NDCG@10 full | Coverage@10 | ILD@10 "
        "| Novelty@10 | fit s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    starred = False
    refit = [r["model"] for r in doc["results"] if r.get("test_input") == "refit"]
    parts = [r["model"] for r in doc["results"] if r.get("test_input") == "parts"]
    for r in doc["results"]:
        fit = _f(r.get("fit_seconds"), ".1f")
        if r.get("family") == "hybrid":
            fit += "*"
            starred = True
        lines.append(
            f"| {r['model']} | {r.get('family', '')} | {_f(r.get('HR@10 [sampled-100]'), '.4f')} "
            f"| {_f(r.get('NDCG@10 [sampled-100]'), '.4f')} | {_f(r.get('HR@10 [full]'), '.4f')} "
            f"| {_f(r.get('NDCG@10 [full]'), '.4f')} | {_pct(r.get('Coverage@10 [full]'))} "
            f"| {_f(r.get('ILD@10 [full]'), '.4f')} | {_f(r.get('Novelty@10 [full]'), '.2f')} | {fit} |")
    if starred:
        lines += ["", "\\* the hybrid's parts are the study's own NeuMF, ItemKNN and content runs; its fit time is "
                      "the weight tuning."]
    if refit:
        lines += ["", *_caption(
            "Each test item is ranked from everything the user did before it (training + validation ratings): "
            + ("every model was refitted on them" if doc.get("refit") else
               f"{', '.join(refit)} (per-user parameters) were refitted on them with their validation choices "
               "kept" + (f", {' and '.join(parts)} combined their parts' test models" if parts else "")
               + ", the others read them as a history") + "; the fit time is the fit on the training part.")]
    return "\n".join(lines)


def render_conclusions(doc: dict[str, Any]) -> str:
    """The report's first conclusions, generated by the study from its numbers (study/conclusions.py)."""
    lines = [*_caption(f"The report's first {CONCLUSIONS} conclusions, as the study wrote them ({doc['dataset']}, "
                       f"{caption_machine(doc)}; movierec {doc['movierec']}):"), ""]
    for text in doc.get("conclusions", [])[:CONCLUSIONS]:
        wrapped = textwrap.wrap(text, 113, break_on_hyphens=False, break_long_words=False)
        lines += ["- " + wrapped[0], *("  " + w for w in wrapped[1:])]
    return "\n".join(lines)


def _short_title(title: str) -> str:
    """'Emperor's New Groove, The (2000)' -> 'The Emperor's New Groove'."""
    title = re.sub(r"\s*\(\d{4}\)\s*$", "", title)
    m = re.match(r"^(.*), (The|A|An)$", title)
    return f"{m.group(2)} {m.group(1)}" if m else title


def render_similar(doc: dict[str, Any]) -> str:
    fmts = {"dot": ".1f", "cosine": ".1f", "euclidean": ".2f"}
    res = doc["results"]
    lines = [
        *_caption(f"Movies like Toy Story on {doc['dataset']}, weighted genres (movies with at least "
                  f"{doc['min_ratings']} ratings; movierec {doc['movierec']}, {doc['date']}):"),
        "",
        "| rank | dot (the study's setting) | cosine | euclidean |",
        "|---:|---|---|---|",
    ]
    n = max(len(v) for v in res.values())
    for i in range(n):
        cells = []
        for m in SIMILAR_MEASURES:
            row = res[m][i] if i < len(res[m]) else None
            cells.append("" if row is None else f"{_short_title(row['title'])} ({format(row['score'], fmts[m])})")
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_content_hybrid(doc: dict[str, Any]) -> str:
    lines = [
        *_caption(f"`configs/content-hybrid.toml` on {doc['dataset']} ({caption_machine(doc)}; movierec "
                  f"{doc['movierec']}{_note(doc)}; s100 = sampled-100; Coverage, ILD and Novelty under full ranking):"),
        "",
        "| model | HR@10 s100 | NDCG@10 s100 | HR@10 full | NDCG@10 full | Coverage@10 | ILD@10 | Novelty@10 "
        "| fit s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        lines.append(
            f"| {r['model']} | {_f(r.get('HR@10 [sampled-100]'), '.4f')} | {_f(r.get('NDCG@10 [sampled-100]'), '.4f')} "
            f"| {_f(r.get('HR@10 [full]'), '.4f')} | {_f(r.get('NDCG@10 [full]'), '.4f')} "
            f"| {_f(r.get('Coverage@10 [full]'), '.4f')} | {_f(r.get('ILD@10 [full]'), '.4f')} "
            f"| {_f(r.get('Novelty@10 [full]'), '.4f')} | {_f(r.get('fit_seconds'), '.1f')} |")
    return "\n".join(lines)


def render_peers(doc: dict[str, Any]) -> str:
    lines = [
        *_caption(f"`python benchmarks/bench_models.py` ({Path(doc['data']).name}, the same leave-one-out test "
                  f"items; {caption_machine(doc)}; movierec {doc['movierec']}). Every row is tested from the "
                  "history up to the test item (training + validation), as the peers were. Ours choose λ, the "
                  "best epoch or the blend on validation, then are refitted on training + validation with those "
                  "choices (the default, `refit = true`), ± one standard error over users; in brackets "
                  "`refit = false` (the built-in study's setting: fitted on training, reading training + "
                  "validation as a history). Fit seconds: the fit, + the refit. Peer rows: "
                  "../shared/reference/peers.md:"),
        "",
        "| model | HR@10 s100 | NDCG@10 s100 | NDCG@10 full | Recall@20 full | fit s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        a, b = r["default"], r["no_refit"]
        cells = [f"{a['sampled_HR@10']:.4f} ± {a['se_sampled_HR@10']:.3f} ({b['sampled_HR@10']:.4f})",
                 f"{a['sampled_NDCG@10']:.4f} ({b['sampled_NDCG@10']:.4f})",
                 f"{a['full_NDCG@10']:.4f} ± {a['se_full_NDCG@10']:.4f} ({b['full_NDCG@10']:.4f})",
                 f"{a['full_Recall@20']:.3f} ({b['full_Recall@20']:.3f})"]
        lines.append(f"| movierec {r['model']} | " + " | ".join(cells)
                     + f" | {r['fit_s']:.1f} (+{r['refit_s']:.1f}) |")
    for name, p in doc["peers"].items():
        lines.append(f"| {name} | {p['sampled_HR@10']:.4f} | {p['sampled_NDCG@10']:.4f} | {p['full_NDCG@10']:.4f} "
                     f"| {p['full_Recall@20']:.3f} | {p['fit_s']:.0f} |")
    return "\n".join(lines)


RENDERERS = {"study": render_study, "similar": render_similar, "content-hybrid": render_content_hybrid,
             "peers": render_peers, "conclusions": render_conclusions}


def render(name: str, results_dir: Path = RESULTS) -> str:
    return RENDERERS[name](load(name, results_dir))


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- table:{re.escape(name)} -->\n)(.*?)(\n<!-- /table:{re.escape(name)} -->)", re.S)


def readme_table(text: str, name: str) -> str | None:
    """The text between a table's markers in ``text`` (None when the markers are missing)."""
    m = _block(name).search(text)
    return None if m is None else m.group(2)


def rewrite(text: str, results_dir: Path = RESULTS, page: Path = README) -> str:
    """``text`` (the page ``page``) with each of its tables rendered afresh from ``results_dir``."""
    for name in (n for n in RENDERERS if PAGES[n] == page):
        if readme_table(text, name) is None:
            raise SystemExit(f"{page.name}: no <!-- table:{name} --> ... <!-- /table:{name} --> markers")
        body = render(name, results_dir)
        text = _block(name).sub(lambda m, b=body: m.group(1) + b + m.group(3), text)
    return text


# ---------------------------------------------------------------------------------------------- cli

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="copy results into docs/results/ with date, machine and version")
    c.add_argument("--study", type=Path)
    c.add_argument("--experiment", type=Path)
    c.add_argument("--models", type=Path, help="benchmarks/results/bench_models.json")
    c.add_argument("--note", default="", help="a clause for the caption, e.g. 'other jobs shared the CPU'")
    s = sub.add_parser("similar", help="recompute the similar-movies table's source")
    s.add_argument("--data", default="ml-latest-small")
    r = sub.add_parser("render", help="rewrite the pages' tables from docs/results/")
    r.add_argument("--check", action="store_true", help="only report whether a table is stale (exit 1 if so)")
    args = ap.parse_args(argv)

    if args.cmd == "collect":
        if args.study:
            print(f"wrote {collect_study(args.study, args.note)}")
        if args.experiment:
            print(f"wrote {collect_experiment(args.experiment, args.note)}")
        if args.models:
            print(f"wrote {collect_models(args.models)}")
        return 0
    if args.cmd == "similar":
        print(f"wrote {compute_similar(args.data)}")
        return 0
    stale = False
    for page in dict.fromkeys(PAGES.values()):
        text = page.read_text()
        new = rewrite(text, page=page)
        where = page.relative_to(ROOT)
        if args.check:
            if new != text:
                print(f"{where}'s tables differ from docs/results/; run: python scripts/readme_tables.py render")
                stale = True
        elif new != text:
            page.write_text(new)
            print(f"{where}: tables rewritten")
        else:
            print(f"{where}: tables up to date")
    if args.check:
        return int(stale)
    for name in RENDERERS:
        caption = " ".join(render(name).split("\n\n", 1)[0].splitlines())
        print(f"  {name}: {caption}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
