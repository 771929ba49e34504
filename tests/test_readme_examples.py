"""Every `movierec ...` command in the bash blocks of README.md and the docs pages it links to runs, in order
(:data:`PAGES`), as written (so they cannot drift from the code). A command is skipped only for a reason listed
in SKIP (network, data this machine lacks, a server that runs until stopped); neural models, experiments and
studies get `--set epochs=1` (EASE a fixed λ) and nothing else changes. The skip list must name commands that are
still in those pages."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MOVIEREC = [sys.executable, "-m", "movierec"]

#: command prefix -> why it is not run here
SKIP = {
    "movierec data fetch": "downloads (no network in tests)",
    "movierec data import ~/Downloads": "a folder on the reader's machine",
    "movierec data synth --users 138493": "writes 20M ratings (benchmarks do; tests/data covers synth)",
    "movierec data import events.csv": "the reader's own file (tests/test_own_data.py imports such files)",
    "movierec serve": "runs until stopped (tests/serving starts the app)",
    "movierec train neumf --data ml-1m": "ml-1m ratings are not in ../shared/data",
    "movierec experiment configs/ncf-paper.toml": "needs the NCF paper's ml-1m files",
    "movierec experiment configs/seed-study.toml": "trains 13 neural runs (minutes)",
    "movierec experiment configs/vae-paper.toml": "ml-20m ratings are not in ../shared/data",
    "movierec study --data ml-20m": "ml-20m ratings are not in ../shared/data",
}
#: command prefix -> why it runs after the others (it reads what a later README command writes)
LATER = {"movierec segments --data ml-latest-small --embeddings runs/neumf": "runs/neumf is trained further down"}
#: command prefix -> arguments appended to keep the test short
FAST = {
    "movierec train neumf": ["--set", "epochs=1"],
    "movierec train mlp": ["--set", "epochs=1"],
    "movierec train multvae": ["--set", "epochs=1"],
    "movierec train sasrec": ["--set", "epochs=1"],
    "movierec train gru4rec": ["--set", "epochs=1"],
    "movierec train ease": ["--set", "l2=250"],  # one factorisation instead of the λ search's four
    "movierec tune ials": ["--trials", "2"],
    "movierec experiment configs/content-hybrid.toml": ["--set", "epochs=1"],
    "movierec experiment configs/cold-items.toml": ["--set", "epochs=1"],
    "movierec study --data ml-latest-small": ["--set", "epochs=1"],
}


#: the pages whose commands run, in this order (a later page's commands may read what an earlier one wrote)
PAGES = ["README.md", "docs/data.md", "docs/protocols.md", "docs/serving.md", "docs/models.md", "docs/scale.md",
         "docs/results.md"]


def readme_commands() -> list[list[str]]:
    """Each command's arguments, as the shell would split them (the trailing comment dropped)."""
    text = "\n".join((REPO / page).read_text() for page in PAGES)
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():  # a command continued with a backslash
            if line.strip().startswith("movierec "):
                out.append(shlex.split(line, comments=True))
    return out


def _prefix(argv: list[str], table: dict) -> str | None:
    return next((p for p in table if " ".join(argv).startswith(p)), None)


def test_the_skip_list_names_readme_commands() -> None:
    commands = [" ".join(c) for c in readme_commands()]
    assert len(commands) >= 20
    for prefix in [*SKIP, *LATER, *FAST]:
        assert any(c.startswith(prefix) for c in commands), f"{prefix!r} is no longer in README.md or its pages"


def test_every_docs_page_with_commands_is_run() -> None:
    with_commands = {str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")
                     if re.search(r"```bash\n\s*movierec ", p.read_text())}
    assert with_commands <= set(PAGES)


@pytest.mark.e2e
def test_readme_commands_run(shared_data_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MOVIEREC_DATA_DIR": str(shared_data_dir), "COLUMNS": "200",
           "MOVIEREC_CACHE_DIR": str(tmp_path / "cache")}
    (tmp_path / "configs").symlink_to(REPO / "configs")  # the README's paths are relative to the checkout
    commands = [c for c in readme_commands() if not _prefix(c, SKIP)]
    commands = [c for c in commands if not _prefix(c, LATER)] + [c for c in commands if _prefix(c, LATER)]
    failures, ran = [], 0
    for argv in commands:
        argv = [a.replace("../shared/data", str(shared_data_dir)) for a in argv]
        argv += FAST.get(_prefix(argv, FAST) or "", [])
        target = None
        if ">" in argv:  # `movierec ... > FILE`: the shell's redirection
            argv, target = argv[:argv.index(">")], argv[argv.index(">") + 1]
        r = subprocess.run([*MOVIEREC, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
        if target is not None and r.returncode == 0:
            (tmp_path / target).write_text(r.stdout)
        ran += 1
        if r.returncode != 0:
            failures.append(f"{shlex.join(argv)}\n    -> exit {r.returncode}: {(r.stderr or r.stdout).strip()[-400:]}")
    assert ran >= 20
    assert not failures, "README commands that fail:\n" + "\n".join(failures)
