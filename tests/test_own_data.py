"""Your own interactions (issue 13, item 1): `movierec data import FILE --user COL --item COL ... --name NAME` with
string ids, implicit feedback, ISO or no timestamps, an items file; then train, evaluate, recommend by the user's own
id, a table for every user, EDA and a study, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli

N_USERS, N_ITEMS, PER_USER = 60, 240, 25  # leave-one-out draws 99 negatives per user: more items than that


def item_name(i: int) -> str:
    return f"item-{chr(65 + i % 26)}{i // 26:02d}"


def interactions(seed: int = 0, *, timestamps: bool = True, ratings: bool = False) -> pd.DataFrame:
    """PER_USER rows per user "u001".. over items "item-A00".. (popular items more often), a few repeats."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8
    rows = []
    for u in range(N_USERS):
        items = rng.choice(N_ITEMS, size=PER_USER, replace=False, p=p / p.sum())
        for j, i in enumerate(items):
            rows.append({"customer": f"u{u + 1:03d}", "sku": item_name(int(i)), "day": j})
    frame = pd.DataFrame(rows)
    frame = pd.concat([frame, frame.iloc[::50]], ignore_index=True)  # 30 repeated (user, item) rows
    if timestamps:
        frame["when"] = (pd.Timestamp("2024-01-01") + pd.to_timedelta(frame["day"] + np.arange(len(frame)) % 7,
                                                                       unit="D")).dt.strftime("%Y-%m-%d")
    if ratings:
        frame["stars"] = rng.integers(1, 6, len(frame)).astype(str)
    return frame.drop(columns="day")




@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setenv("MOVIEREC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MOVIEREC_DATA_DIR", raising=False)

    def call(*args: str, ok: bool = True) -> tuple[int, str, str]:
        code, out, err = run_cli(monkeypatch, capsys, *args)
        if ok:
            assert code == 0, err
        return code, out, err

    return call


QUICK_STUDY = """
[study]
split = "loo"
seed = 42
examples = 2

[segments]
k_min = 2
k_max = 3

[defaults]
epochs = 1
patience = 0

[[run]]
name = "Popularity"
model = "popularity"

[[run]]
name = "ItemKNN"
model = "itemknn"

[[run]]
name = "GMF"
model = "gmf"
"""


def test_implicit_string_ids_without_timestamps_end_to_end(tmp_path: Path, cli) -> None:
    from movierec.data import load_dataset

    events = tmp_path / "events.csv"
    interactions(timestamps=False).to_csv(events, index=False)
    _, out, _ = cli("data", "import", str(events), "--user", "customer", "--item", "sku", "--name", "shop")
    assert "as shop" in out and "30 repeated" in out and "implicit" in out and "no timestamps" in out
    folder = tmp_path / "cache" / "imported" / "shop"
    info = json.loads((folder / "import.json").read_text())
    assert info["implicit"] is True and info["has_timestamps"] is False
    assert (info["rows_read"], info["rows_kept"], info["duplicates_dropped"]) == (1530, 1500, 30)
    labels = pd.read_parquet(folder / "labels.parquet")
    assert set(labels["kind"]) == {"user", "movie"}

    ds = load_dataset("shop")
    assert ds.user_labels is not None and ds.user_labels[0] == "u001" and list(ds.user_labels) == sorted(ds.user_labels)
    assert ds.item_labels is not None and all(str(t).startswith("item-") for t in ds.item_labels)
    assert set(np.unique(ds.interactions.rating)) == {1.0} and not ds.interactions.timestamp.any()
    assert ds.catalog is not None and ds.catalog.titles(ds.items.ids[:1]) == [ds.item_labels[0]]
    assert load_dataset("shop").fingerprint() == ds.fingerprint()

    run = tmp_path / "run"
    cli("train", "itemknn", "--data", "shop", "--out", str(run))
    assert pd.read_parquet(run / "model" / "ids.parquet" if (run / "model").is_dir() else run / "ids.parquet")[
        "label"].str.startswith(("u", "item-")).all()
    cli("evaluate", str(run))
    _, out, _ = cli("recommend", str(run), "--user", "u001", "--json")
    answer = json.loads(out)
    assert answer["user"] == "u001" and len(answer["recommendations"]) == 10
    assert all(r["title"].startswith("item-") for r in answer["recommendations"])
    assert all(r["movieId"] == r["title"] for r in answer["recommendations"])  # the own id, not a code
    code, _, err = cli("recommend", str(run), "--user", "nobody", ok=False)
    assert code == 2 and err.strip() == "error: unknown user id: nobody"

    recs = tmp_path / "recs.parquet"
    cli("recommend", str(run), "--users", "all", "--out", str(recs))
    table = pd.read_parquet(recs)
    assert table["user"].dtype == "string" and table["user"].iloc[0] == "u001" and table["user"].nunique() == 60
    assert table["movie"].dtype == "string" and table["movie"].str.startswith("item-").all()  # own ids, no codes
    assert "item" not in table.columns
    from fastapi.testclient import TestClient

    from movierec.serving import Service
    from movierec.serving.api import create_app

    with TestClient(create_app(service=Service.open([run]))) as c:  # the server takes the user's own ids too
        served = c.get("/v1/users/u001/recommendations").json()
        assert served["user_id"] == "u001"
        assert [r["title"] for r in served["recommendations"]] == [r["title"] for r in answer["recommendations"]]
        assert [r["movie_id"] for r in served["recommendations"]] == [r["movieId"] for r in answer["recommendations"]]
        assert c.get("/v1/users/nobody/recommendations").status_code == 404
    some = tmp_path / "some.txt"
    some.write_text("u002\nu005\n")
    cli("recommend", str(run), "--users", str(some), "--out", str(tmp_path / "some.csv"))
    assert pd.read_csv(tmp_path / "some.csv")["user"].unique().tolist() == ["u002", "u005"]

    _, out, _ = cli("eda", "--data", "shop", "--out", str(tmp_path / "eda"))
    assert "implicit feedback" in out
    figures = {p.stem for p in (tmp_path / "eda" / "figures").iterdir()}
    assert not figures & {"rating_distribution", "activity_vs_rating", "ratings_over_time", "genre_frequencies",
                          "genre_boxplots", "genre_correlation", "genre_vif"}
    html = (tmp_path / "eda" / "eda.html").read_text()
    assert "Implicit feedback: no ratings" in html and "no timestamps" in html and "No genre information" in html

    config = tmp_path / "quick.toml"
    config.write_text(QUICK_STUDY)
    cli("study", "--data", "shop", "--out", str(tmp_path / "study"), "--config", str(config))
    assert (tmp_path / "study" / "report.html").is_file()
    assert len(pd.read_csv(tmp_path / "study" / "results.csv")) == 3


def test_iso_timestamps_and_reimport(tmp_path: Path, cli) -> None:
    from movierec.data import load_dataset

    events = tmp_path / "events.csv"
    interactions().to_csv(events, index=False)
    args = ("data", "import", str(events), "--user", "customer", "--item", "sku", "--timestamp", "when",
            "--name", "shop")
    cli(*args)
    ds = load_dataset("shop")
    assert ds.interactions.timestamp.min() >= pd.Timestamp("2024-01-01").timestamp()
    assert json.loads((tmp_path / "cache" / "imported" / "shop" / "import.json").read_text())["has_timestamps"]
    cli(*args)  # the same file with the same options may replace it
    code, _, err = cli("data", "import", str(events), "--user", "customer", "--item", "sku", "--name", "shop",
                       ok=False)  # other options: another import
    assert code == 2 and err.count("\n") == 1 and "already imported" in err and "--force" in err
    cli("data", "import", str(events), "--user", "customer", "--item", "sku", "--name", "shop", "--force")
    assert not load_dataset("shop").interactions.timestamp.any()
    run = tmp_path / "run"
    cli("train", "popularity", "--data", "shop", "--out", str(run))
    assert json.loads(cli("recommend", str(run), "--user", "u060", "--json")[1])["user"] == "u060"


def test_items_file_with_titles_genres_and_ratings(tmp_path: Path, cli) -> None:
    from movierec.data import load_dataset

    frame = interactions(ratings=True)
    frame["customer"] = frame["customer"].str[1:].astype(int).astype(str)  # integer user ids: kept as they are
    events = tmp_path / "events.tsv"
    frame.to_csv(events, index=False, sep="\t")
    catalog = pd.DataFrame({"code": [item_name(i) for i in range(N_ITEMS - 5)],  # five items without an entry
                            "name": [f"Product, no. {i}" for i in range(N_ITEMS - 5)],
                            "cats": ["Garden; Tools" if i % 2 else "Kitchen" for i in range(N_ITEMS - 5)]})
    items = tmp_path / "items.parquet"
    catalog.to_parquet(items)
    cli("data", "import", str(events), "--sep", "\t", "--user", "customer", "--item", "sku", "--rating", "stars",
        "--timestamp", "when", "--items", str(items), "--item-id", "code", "--title", "name", "--genres", "cats",
        "--genre-sep", ";", "--name", "store")
    ds = load_dataset("store")
    assert ds.users.ids[0] == 1 and ds.user_labels is not None and ds.user_labels[0] == "1"
    assert set(np.unique(ds.interactions.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    movies = ds.catalog.movies.set_index("title")
    assert movies.loc["Product, no. 1", "genres"] == ["Garden", "Tools"]
    assert movies.loc["Product, no. 2", "genres"] == ["Kitchen"]
    assert ds.catalog.genre_names == ["Garden", "Kitchen", "Tools"]
    missing = [ds.catalog.titles([m])[0] for m, label in zip(ds.items.ids, ds.item_labels, strict=True)
               if label in {item_name(i) for i in range(N_ITEMS - 5, N_ITEMS)}]
    assert all(t.startswith("item-") for t in missing)
    _, out, _ = cli("eda", "--data", "store", "--out", str(tmp_path / "eda"))
    assert "genres: 3" in out
    run = tmp_path / "run"
    cli("train", "itemknn", "--data", "store", "--out", str(run))
    answer = json.loads(cli("recommend", str(run), "--user", "7", "--json")[1])
    assert answer["user"] == "7" and all(r["title"].startswith(("Product", "item-")) for r in answer["recommendations"])


def test_a_movielens_folder_still_imports(tmp_path: Path, cli) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4.0,5\n2,10,3.0,6\n")
    (folder / "movies.csv").write_text("movieId,title,genres\n10,A (1999),Drama\n")
    _, out, _ = cli("data", "import", str(folder))
    assert out.strip() == f"imported {folder} as ml"
    code, _, err = cli("data", "import", str(folder), "--user", "x", ok=False)
    assert code == 2 and "--user" in err


@pytest.mark.parametrize(("content", "args", "expected"), [
    ("customer,item\nu1,a\n", ("--item", "sku"),
     r"events\.csv: no column 'sku' \(--item\); the file has the columns customer, item$"),
    ("customer,sku\nu1,a\n,b\n", (), r"events\.csv, line 3: empty user id in column 'customer'"),
    ("customer,sku\nu1,a\nu2, \n", (), r"events\.csv, line 3: empty item id in column 'sku'"),
    ("customer,sku,stars\nu1,a,4\nu2,b,good\n", ("--rating", "stars"),
     r"events\.csv, line 3: rating 'good' is not a number$"),
    ("customer,sku,stars\nu1,a,4\nu2,b,9\n", ("--rating", "stars"), r"events\.csv, line 3: rating 9 is outside"),
    ("customer,sku,t\nu1,a,2024-01-02\nu2,b,1700000000\nu3,c,yesterday\n", ("--timestamp", "t"),
     r"events\.csv, line 4: timestamp 'yesterday' is neither a number \(unix seconds\) nor an ISO date"),
    ("customer,sku\n", (), r"events\.csv: holds no rows"),
], ids=["missing-column", "empty-user", "empty-item", "bad-rating", "rating-scale", "bad-timestamp", "no-rows"])
def test_a_bad_file_is_one_line_naming_file_and_line(tmp_path: Path, cli, content: str, args: tuple[str, ...],
                                                     expected: str) -> None:
    import re

    from movierec.data.releases import imported

    events = tmp_path / "events.csv"
    events.write_text(content)
    base = {"--user": "customer", "--item": "sku"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    code, out, err = cli("data", "import", str(events), *[x for kv in base.items() for x in kv], "--name", "bad",
                         ok=False)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert re.search(expected, err), err
    assert "bad" not in imported() and not (tmp_path / "cache" / "imported" / "bad").exists()


def test_unreadable_and_missing_files_and_options(tmp_path: Path, cli) -> None:
    broken = tmp_path / "events.parquet"
    broken.write_bytes(b"\x00\x01 not parquet")
    code, _, err = cli("data", "import", str(broken), "--user", "u", "--item", "i", "--name", "x", ok=False)
    assert code == 2 and err.count("\n") == 1 and "cannot be read as Parquet" in err and str(broken) in err
    code, _, err = cli("data", "import", str(tmp_path / "nope.csv"), "--user", "u", "--item", "i", "--name", "x",
                       ok=False)
    assert code == 2 and err.count("\n") == 1 and "nope.csv: not found" in err
    events = tmp_path / "events.csv"
    events.write_text("u,i\n1,2\n")
    code, _, err = cli("data", "import", str(events), "--user", "u", ok=False)
    assert code == 2 and "--item COL, --name NAME" in err
    code, _, err = cli("data", "import", str(events), "--user", "u", "--item", "i", "--name", "ml-1m", ok=False)
    assert code == 2 and "MovieLens release" in err
