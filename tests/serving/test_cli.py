"""`movierec recommend --rate / --users`, `movierec similar --model` and `movierec serve`'s checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import cli_fails as fails
from tests.conftest import cli_ok as ok


def test_new_person_by_titles_and_ids(served_runs, service) -> None:
    run = str(served_runs["itemknn"])
    out = json.loads(ok("recommend", run, "--rate", "Toy Story (1995)=5", "--rate", "heat=4", "--rate", "2571=4.5",
                        "-k", "7", "--json"))
    assert [r["movieId"] for r in out["ratings"]] == [1, 6, 2571]
    got = [r["movieId"] for r in out["recommendations"]]
    assert len(got) == 7 and not {1, 6, 2571} & set(got)
    api = service.for_person([(1, 5.0), (6, 4.0), (2571, 4.5)], 7, "itemknn")
    assert got == [r["movie_id"] for r in api["recommendations"]]  # the CLI and the server agree
    table = ok("recommend", run, "--rate", "Toy Story (1995)=5", "-k", "3")
    assert "because you rated Toy" in " ".join(table.split())


def test_session_order_reaches_the_model(served_runs) -> None:
    from movierec.serving import ServedModel

    served = ServedModel.open(served_runs["itemknn"])
    seen = {}
    original = served.model.score_history

    def spy(history, items=None):
        seen["items"] = history.item.tolist()
        seen["timestamps"] = history.timestamp.tolist()
        return original(history, items)

    served.model.score_history = spy
    served.recommend_history(np.array([5, 2, 9]), np.array([4.0, 5.0, 3.0]), 5)
    assert seen["items"] == [5, 2, 9] and seen["timestamps"] == [0, 1, 2]


@pytest.mark.parametrize(("args", "message"), [
    (["--rate", "Toy Story (1995)"], "write TITLE=RATING"),
    (["--rate", "Toy Story (1995)=great"], "the rating 'great' is not a number"),
    (["--rate", "Toy Story (1995)=9"], "rating 9 is outside the scale 0.5 to 5"),
    (["--rate", "Toy Story (1995)=nan"], "finite"),
    (["--rate", "No Such Movie Ever=4"], "no movie titled 'No Such Movie Ever'"),
    (["--rate", "Hamlet=4"], "matches"),
    (["--rate", "424242424=4"], "unknown movie id 424242424"),
    ([], "give one of --user ID, --rate TITLE=RATING"),
    (["--user", "1", "--rate", "1=5"], "(got --user and --rate)"),
    (["--user", "1", "--out", "x.parquet"], "--out goes with --users"),
    (["--users", "all"], "--users needs --out"),
    (["--user", "1", "-k", "0"], "-k must be at least 1"),
])
def test_recommend_errors(served_runs, args, message) -> None:
    assert message in fails("recommend", str(served_runs["itemknn"]), *args)


def test_every_user_to_parquet_and_csv(served_runs, service, tmp_path: Path) -> None:
    run = str(served_runs["gmf"])
    out = tmp_path / "recs.parquet"
    summary = json.loads(ok("recommend", run, "--users", "all", "--out", str(out), "-k", "5", "--json"))
    table = pd.read_parquet(out)
    assert list(table.columns) == ["user", "rank", "movie", "score"]
    assert summary["users"] == 610 and summary["rows"] == len(table) == 610 * 5
    assert (table.groupby("user")["rank"].apply(list) == [[1, 2, 3, 4, 5]] * 610).all()
    one = service.for_user(414, 5, "gmf")["recommendations"]
    assert table[table["user"] == 414]["movie"].tolist() == [r["movie_id"] for r in one]
    # a file of ids, with a header, to CSV; an existing output is kept unless --force
    ids = tmp_path / "users.csv"
    ids.write_text("userId\n414\n1\n")
    csv = tmp_path / "recs.csv"
    ok("recommend", run, "--users", str(ids), "--out", str(csv), "-k", "3")
    got = pd.read_csv(csv)
    assert got["user"].tolist() == [414] * 3 + [1] * 3
    assert "already exists; pass --force" in fails("recommend", run, "--users", str(ids), "--out", str(csv))
    before = csv.read_bytes()
    ok("recommend", run, "--users", str(ids), "--out", str(csv), "-k", "2", "--force")
    assert csv.read_bytes() != before and len(pd.read_csv(csv)) == 4


@pytest.mark.parametrize(("content", "message"), [
    ("1\nabc\n", "line 2: 'abc' is not a user id"),
    ("1\n999999\n", "unknown user id 999999 (entry 2 of the user list)"),
    ("", "holds no user ids"),
])
def test_user_file_errors(served_runs, tmp_path: Path, content, message) -> None:
    ids = tmp_path / "users.txt"
    ids.write_text(content)
    line = fails("recommend", str(served_runs["itemknn"]), "--users", str(ids), "--out", str(tmp_path / "r.parquet"))
    assert message in line
    assert not (tmp_path / "r.parquet").exists()


def test_out_must_be_a_table_file(served_runs, tmp_path: Path) -> None:
    run = str(served_runs["itemknn"])
    assert "name a .parquet or .csv file" in fails("recommend", run, "--users", "all", "--out", str(tmp_path / "r.txt"))
    assert "does not exist" in fails("recommend", run, "--users", "all", "--out", str(tmp_path / "no" / "r.csv"))


def test_similar_by_model(served_runs) -> None:
    out = json.loads(ok("similar", "Toy Story", "--model", str(served_runs["itemknn"]), "-k", "5", "--json"))
    assert out["query"]["movieId"] == 1 and out["model"] == "itemknn"
    assert len(out["results"]) == 5 and 1 not in [r["movieId"] for r in out["results"]]
    assert "give --data DATASET (content similarity) or --model RUN" in fails("similar", "Toy Story")
    assert "not both" in fails("similar", "Toy Story", "--model", str(served_runs["gmf"]), "--data", "x")


def test_similar_by_popularity_says_it_cannot(mls, tmp_path: Path) -> None:
    from movierec.runs.folders import train_run

    train_run("popularity", mls, tmp_path / "pop")
    assert "popularity has no notion of similar movies" in fails("similar", "Toy Story", "--model",
                                                                 str(tmp_path / "pop"))


def test_serve_checks_before_starting(tmp_path: Path) -> None:
    assert "not found" in fails("serve", str(tmp_path / "nothing"))
    (tmp_path / "file").write_text("x")
    assert "a file" in fails("serve", str(tmp_path / "file"))
    (tmp_path / "empty").mkdir()
    assert "no config.json, no study.json" in fails("serve", str(tmp_path / "empty"))
    assert "--port 70000" in fails("serve", str(tmp_path / "empty"), "--port", "70000")


def test_serve_refuses_a_port_in_use(served_runs) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = fails("serve", str(served_runs["itemknn"]), "--port", str(port))
    assert f"cannot listen on 127.0.0.1:{port}" in line and "choose another port" in line
    assert "--host" in fails("serve", str(served_runs["itemknn"]), "--host", "no-such-host.invalid")
