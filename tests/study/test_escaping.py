"""The study report treats data as text: run names, movie titles and config values are escaped, and the cached
EDA fragment (the one piece embedded as HTML) is used only when it is exactly what the EDA wrote."""

from __future__ import annotations

import hashlib
import json
import re

import pandas as pd
import pytest

from movierec.data import load_dataset
from movierec.data.synthetic import write_synthetic
from movierec.errors import MovieRecError

PAYLOAD = "<script>alert(1)</script> & [test]"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; [test]"
CONFIG = {
    "study": {"examples": 2, "save_models": False, "eda_sample": 2000, "similar": PAYLOAD},
    "segments": {"k_min": 2, "k_max": 3},
    "run": [{"name": f"Popularity {PAYLOAD}", "model": "popularity"},
            {"name": "ItemKNN", "model": "itemknn", "k": 20}],
}


def _no_injected_tag(html: str) -> None:
    assert not re.search(r"<\s*script", html, re.IGNORECASE)
    assert "alert(1)</script>" not in html and "alert(2)" not in html


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from movierec.study import run_study

    root = tmp_path_factory.mktemp("escaping")
    folder = write_synthetic(root / "syn", 80, 300, 3000, seed=1)
    movies = pd.read_csv(folder / "movies.csv")
    movies["title"] = [f"{PAYLOAD} {i} (1999)" for i in range(len(movies))]  # every title shown carries it
    movies.to_csv(folder / "movies.csv", index=False)
    dataset = load_dataset(str(folder))
    out = root / "study"
    ctx = run_study(dataset, out, CONFIG)
    return dataset, out, ctx


def test_names_titles_and_config_values_are_escaped(study) -> None:
    _, out, _ = study
    html = (out / "report.html").read_text()
    _no_injected_tag(html)
    assert f"Popularity {ESCAPED}" in html  # the run name: comparison table, examples, segment table
    assert f"{ESCAPED} " in html  # movie titles (example users' histories and top-10 lists)
    assert f"similar = &#34;{ESCAPED}&#34;" in html  # the config as shown under "Set-up"
    assert "<h2 id=\"data\">" in html and "<section id=\"eda-overview\"" in html  # the EDA is still HTML


def test_a_tampered_fragment_is_not_embedded(study) -> None:
    from movierec.study import run_study

    dataset, out, _ = study
    fragment = out / "eda" / "fragment.html"
    fragment.write_text(fragment.read_text() + "<script>alert(2)</script>\n<img src=x onerror=alert(2)>\n")
    ctx = run_study(dataset, out, CONFIG)
    assert ctx["eda"].startswith("ran again: its fragment.html does not match")
    html = (out / "report.html").read_text()
    _no_injected_tag(html)
    assert "onerror" not in html
    assert "alert(2)" not in fragment.read_text()  # written again by the EDA

    # a fragment swapped together with the hash in its key file is refused rather than embedded
    text = fragment.read_text() + "<img src=x onerror=alert(2)>\n"
    fragment.write_text(text)
    key_file = out / "eda" / "key.json"
    key = json.loads(key_file.read_text())
    key["fragment_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    key_file.write_text(json.dumps(key))
    with pytest.raises(MovieRecError, match="markup the EDA never writes"):
        run_study(dataset, out, CONFIG)


# -- the terminal: rich would read "[test]" or "[full]" in data as markup and drop it -----------------------------

def _cli(*args: str) -> str:
    from typer.testing import CliRunner

    from movierec.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_similar_prints_titles_in_square_brackets(study) -> None:
    dataset, _, _ = study
    movie = int(dataset.items.ids[0])
    text = _cli("similar", str(movie), "--data", str(dataset.source), "--min-ratings", "0", "-k", "3")
    assert text.count("[test]") >= 4  # the query in the title and each of the three rows
    assert "<script>alert(1)</script>" in text  # a terminal shows the title as it is


def test_experiment_lines_keep_square_brackets(study, tmp_path) -> None:
    dataset, _, _ = study
    (tmp_path / "grid.toml").write_text('[experiment]\nname = "x"\n\n[[run]]\nname = "[test] pop [full]"\n'
                                        'model = "popularity"\n')
    text = _cli("experiment", str(tmp_path / "grid.toml"), "--data", str(dataset.source),
                "--out", str(tmp_path / "out"))
    assert text.count("[test] pop [full]") >= 2  # the progress line and the results table row
