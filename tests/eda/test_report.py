"""run_eda end to end: files, the self-contained page, numbers against direct computation, demographics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("seaborn")
pytest.importorskip("jinja2")
markupsafe = pytest.importorskip("markupsafe")

from movierec._html import data_uri  # noqa: E402
from movierec.data.dataset import Catalog, build_dataset  # noqa: E402
from movierec.eda import EdaReport, eda_fragment, run_eda, summary_lines  # noqa: E402
from movierec.eda import stats as S  # noqa: E402
from movierec.eda.explore import FIGURE_NAMES  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def mls_report(mls, tmp_path_factory: pytest.TempPathFactory) -> tuple[EdaReport, list[str]]:
    steps: list[str] = []
    out = tmp_path_factory.mktemp("eda-mls")
    return run_eda(mls, out, progress=steps.append), steps


def test_files_and_progress(mls_report) -> None:
    report, steps = mls_report
    out = report.html_path.parent
    assert report.html_path == out / "eda.html" and report.html_path.is_file()
    assert steps[0] == "counting" and steps[-1] == "report" and len(steps) == len(set(steps)) >= 8
    names = [f.name for f in report.figures]
    assert set(names) == set(FIGURE_NAMES) - {"demographics"}  # ml-latest-small has no demographics
    for f in report.figures:
        assert f.path == out / "figures" / f"{f.name}.png" and f.path.read_bytes()[:8] == PNG
        assert f.title and f.caption
    for name, df in report.tables.items():
        back = pd.read_csv(out / "tables" / f"{name}.csv")
        assert len(back) == len(df) and list(back.columns) == [str(c) for c in df.columns]
    assert json.loads((out / "summary.json").read_text()) == report.summary


def test_page_is_self_contained(mls_report) -> None:
    report, _ = mls_report
    page = report.html_path.read_text()
    assert page.startswith("<!doctype html>") and "<body>" in page
    for f in report.figures:
        assert f'src="{data_uri(f.path)}"' in page, f.name
    assert 'src="figures/' not in page
    for note in report.notes.values():  # every generated sentence is on the page (HTML-escaped)
        assert str(markupsafe.escape(note)) in page


def test_fragment(mls_report) -> None:
    report, _ = mls_report
    frag = eda_fragment(report)
    assert "<html" not in frag and "<body" not in frag and "<!doctype" not in frag
    assert frag.lstrip().startswith("<section") and frag.count("<section") == frag.count("</section>") >= 8
    assert all(data_uri(f.path) in frag for f in report.figures)
    assert frag.strip() in report.html_path.read_text()  # the page's body is the same fragment
    linked = eda_fragment(report, embed=False)
    assert "data:image" not in linked
    assert all(f'src="figures/{f.name}.png"' in linked for f in report.figures)


def test_summary_numbers_match_direct_computation(mls, mls_report) -> None:
    report, _ = mls_report
    s = report.summary
    inter = mls.interactions
    n = len(inter)
    assert s["n_ratings"] == n == 100_836 and s["n_users"] == 610 and s["n_movies"] == mls.n_items
    assert s["density"] == pytest.approx(n / (mls.n_users * mls.n_items), rel=1e-12)
    assert s["sparsity"] == pytest.approx(1 - n / (mls.n_users * mls.n_items), rel=1e-12)
    r = inter.rating.astype(np.float64)
    assert s["rating_mean"] == pytest.approx(r.mean(), rel=1e-9)
    assert s["rating_std"] == pytest.approx(r.std(), rel=1e-9)
    assert s["rating_median"] == np.median(r)
    assert s["gini_users"] == pytest.approx(S.gini(np.bincount(inter.user)))
    assert s["gini_movies"] == pytest.approx(S.gini(np.bincount(inter.item)))
    assert s["per_user_median"] == np.median(np.bincount(inter.user))
    assert s["movies_with_one_rating"] == int((np.bincount(inter.item) == 1).sum())
    assert report.tables["ratings_per_month"]["n_ratings"].sum() == n
    assert report.tables["rating_distribution"]["count"].sum() == n
    # genres: max VIF over movies with a genre, against a direct computation
    g, names = mls.catalog.item_genres()
    with_genre = g[g.sum(axis=1) > 0]
    v = S.vif(with_genre)
    assert s["max_vif"] == pytest.approx(v.max()) and s["max_vif_genre"] == names[int(np.argmax(v))]
    assert s["n_vif_over_5"] == 0 and s["vif_movies"] == len(with_genre)
    assert s["n_tag_applications"] == len(mls.catalog.tags)
    assert s["has_demographics"] is False and s["scatter_sampled"] is False


def test_genre_boxplot_table_matches_expanded_ratings(mls, mls_report) -> None:
    report, _ = mls_report
    g, names = mls.catalog.item_genres()
    box = report.tables["genre_boxplots"].set_index("genre")
    inter = mls.interactions
    for genre in ("Drama", "Horror", "Film-Noir"):
        r = inter.rating[g[inter.item, names.index(genre)] > 0].astype(np.float64)
        q1, med, q3 = np.percentile(r, [25, 50, 75])
        row = box.loc[genre]
        assert row["n"] == len(r) and row["mean"] == pytest.approx(r.mean())
        assert (row["q1"], row["median"], row["q3"]) == (q1, med, q3)
        assert row["whisker_low"] == r[r >= q1 - 1.5 * (q3 - q1)].min()


def test_notes_follow_from_numbers(mls_report) -> None:
    report, _ = mls_report
    s, notes = report.summary, report.notes
    assert f"{s['max_vif']:.2f} ({s['max_vif_genre']})" in notes["multicollinearity"]
    assert "none exceeds 5" in notes["multicollinearity"] and "weakly collinear" in notes["multicollinearity"]
    assert f"Gini {s['gini_users']:.3f}" in notes["long_tail"] and f"Gini {s['gini_movies']:.3f}" in notes["long_tail"]
    assert "no user demographics" in notes["demographics"]


def test_summary_lines(mls_report) -> None:
    report, _ = mls_report
    lines = summary_lines(report)
    assert 8 <= len(lines) <= 14 and all(isinstance(x, str) and x for x in lines)
    text = "\n".join(lines)
    assert "ml-latest-small" in lines[0] and "100,836" in lines[0]
    assert "sparsity" in text and "Gini" in text and "VIF" in text


# --------------------------------------------------------------------------------------------- small data sets


_GENRES_100K = 19  # flags in u.item: unknown, Action, Adventure, Animation, Children's, Comedy, ...


def write_ml100k(folder: Path, n_users: int = 40, n_items: int = 12, seed: int = 0) -> Path:
    """A tiny release in ml-100k's layout: u.data, u.item (genre flags), u.user (age|gender|occupation|zip)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    rows = []
    for u in range(1, n_users + 1):
        for i in rng.choice(n_items, size=int(rng.integers(1, n_items)), replace=False):
            rows.append(f"{u}\t{i + 1}\t{int(rng.integers(1, 6))}\t{880000000 + int(rng.integers(0, 3e7))}")
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    items = []
    for i in range(1, n_items + 1):
        flags = ["0"] * _GENRES_100K
        for k in rng.choice(np.arange(1, _GENRES_100K), size=int(rng.integers(1, 3)), replace=False):
            flags[k] = "1"
        items.append("|".join([str(i), f"Movie {i} (199{i % 10})", "01-Jan-1995", "", "", *flags]))
    (folder / "u.item").write_text("\n".join(items) + "\n")
    occupations = ["technician", "other", "writer", "student", "educator"]
    users = [f"{u}|{int(rng.integers(12, 70))}|{'MF'[u % 3 == 0]}|{occupations[u % 5]}|{10000 + u}"
             for u in range(1, n_users + 1)]
    (folder / "u.user").write_text("\n".join(users) + "\n")
    return folder


def test_demographics_ml100k_layout(tmp_path: Path) -> None:
    from movierec.data import load_dataset

    ds = load_dataset(write_ml100k(tmp_path / "ml-100k"))
    assert set(ds.catalog.users.columns) >= {"userId", "gender", "age", "occupation"}
    report = run_eda(ds, tmp_path / "eda")
    assert report.summary["has_demographics"] is True and report.summary["n_users_with_demographics"] == 40
    gender = report.tables["demographics_gender"].set_index("group")
    counts = np.bincount(ds.interactions.user, minlength=ds.n_users)
    female = np.isin(ds.users.ids, ds.catalog.users.loc[ds.catalog.users.gender == "F", "userId"])
    assert gender.loc["F", "n_users"] == female.sum() and gender.loc["F", "n_ratings"] == counts[female].sum()
    want = ds.interactions.rating[female[ds.interactions.user]].mean()
    assert gender.loc["F", "mean_rating"] == pytest.approx(want)
    ages = report.tables["demographics_age"]
    assert ages["n_users"].sum() == 40 and set(ages["group"]) <= set(S.AGE_LABELS)
    assert report.tables["demographics_occupation"]["n_users"].sum() == 40
    assert "demographics" in [f.name for f in report.figures]
    page = report.html_path.read_text()
    assert "User demographics" in page and "Users by occupation" in page
    assert any("demographics:" in x and "users" in x for x in summary_lines(report))
    assert "top_tags" not in report.tables and not (tmp_path / "eda" / "figures" / "top_tags.png").exists()


def _ratings(n_users: int, n_items: int, n: int, seed: int, timestamps: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"userId": rng.integers(1, n_users + 1, n), "movieId": rng.integers(1, n_items + 1, n) * 10,
                         "rating": rng.integers(1, 11, n) / 2,
                         "timestamp": rng.integers(1_000_000_000, 1_100_000_000, n) if timestamps else 0})


def test_ml1m_style_catalog_built_directly(tmp_path: Path) -> None:
    ratings = _ratings(30, 8, 400, seed=1)
    movies = pd.DataFrame({"movieId": np.arange(1, 9) * 10, "title": [f"M{i}" for i in range(8)],
                           "year": 1999.0, "genres": [["Drama"], ["Comedy", "Romance"], ["Drama", "Romance"],
                                                      ["Action"], ["Action", "Sci-Fi"], ["(no genres listed)"],
                                                      ["Comedy"], ["Sci-Fi"]]})
    users = pd.DataFrame({"userId": np.arange(1, 31), "gender": np.where(np.arange(30) % 2, "F", "M"),
                          "age": np.resize([1, 18, 25, 35, 45, 50, 56], 30),
                          "occupation": np.resize(["programmer", "artist", "retired"], 30), "zip": "00000"})
    ds = build_dataset("ml-1m-like", ratings, Catalog(movies=movies, users=users))
    report = run_eda(ds, tmp_path / "eda", sample=10, seed=3)
    s = report.summary
    ages = report.tables["demographics_age"]
    assert ages["group"].tolist() == [g for g in S.AGE_LABELS if g in set(ages["group"])]  # group order
    assert s["n_movies_without_genre"] == 1 and s["n_genres"] == 5
    assert s["scatter_points"] == 10 and s["scatter_sampled"] is True
    assert len(report.tables["genre_vif"]) == 5


def test_no_catalogue_no_timestamps_and_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "eda"
    ds = build_dataset("bare", _ratings(20, 15, 150, seed=2, timestamps=False), None)
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "genre_vif.png").write_bytes(PNG)  # left over from an earlier run
    report = run_eda(ds, out)
    names = {f.name for f in report.figures}
    assert names == {"rating_distribution", "long_tail", "activity_vs_rating"}
    assert not (out / "figures" / "genre_vif.png").exists()
    assert "no timestamps" in report.notes["time"] and "skipped" in report.notes["genres"]
    assert report.summary["n_unknown_timestamps"] == 150
    frag = eda_fragment(report)
    assert frag.count("<img") == 3 and "Ratings over time" in frag
    assert len(summary_lines(report)) >= 6
    with pytest.raises(ValueError, match="sample"):
        run_eda(ds, out, sample=0)


def test_implicit_ratings_with_genres(tmp_path: Path) -> None:
    ratings = _ratings(25, 6, 200, seed=4).assign(rating=1.0)
    movies = pd.DataFrame({"movieId": np.arange(1, 7) * 10, "title": list("abcdef"), "year": np.nan,
                           "genres": [["Drama"], ["Comedy"], ["Drama", "Comedy"], ["Action"], ["Drama"], ["Action"]]})
    report = run_eda(build_dataset("implicit", ratings, Catalog(movies=movies)), tmp_path / "eda")
    s = report.summary
    assert s["rating_std"] == 0 and s["n_rating_values"] == 1 and s["genre_rating_r2"] is None
    assert "same value" in report.notes["boxplots"]
    assert json.loads(report.html_path.parent.joinpath("summary.json").read_text())["genre_rating_r2"] is None


@pytest.mark.parametrize(("vifs", "expect"), [
    ([1.4, 1.2, 1.1], ["only 1.40 (a)", "none exceeds 5", "weakly collinear", "used together as features"]),
    ([7.5, 6.0, 1.2], ["is 7.5 (a)", "2 lie between 5 and 10", "a and b", "moderate multicollinearity"]),
    ([25.0, 12.0, 6.0], ["is 25.0 (a)", "2 exceed 10", "(a and b)", "serious multicollinearity"]),
    ([np.inf, np.inf, 1.5], ["infinite", "a and b are exact linear combinations"]),
])
def test_vif_sentence_follows_from_numbers(vifs: list[float], expect: list[str]) -> None:
    from movierec.eda.sections import _vif_note

    table = pd.DataFrame({"genre": ["a", "b", "c"], "vif": vifs})
    pairs = pd.DataFrame({"a": ["a"], "b": ["b"], "corr": [0.9]})
    note = _vif_note(table, pairs, 1234)
    assert "1,234" in note and "a with b (phi +0.90)" in note
    for e in expect:
        assert e in note, (e, note)
