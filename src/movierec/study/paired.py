"""Paired differences between models over the same users, and their study-wide correction.

Differences between two models are paired over the same users: the mean per-user difference, its standard error
and a paired t-test over the users both were evaluated on. With many models there are many pairs, and at 5%
one pair in twenty would "differ" by chance alone; so every pairwise test of the study (all pairs of models,
under each protocol) is one family, and its p-values are adjusted together with Holm's step-down method
(:func:`adjust_p`; it controls the family-wise error rate, hence also the false-discovery rate, under any
dependence between the tests). A difference is called only when its adjusted p-value is below ``ALPHA``
("within noise" otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ALPHA", "METHOD", "Paired", "PairwiseTests", "adjust_p", "discordant_pairs", "paired", "pairwise_tests"]

ALPHA = 0.05
METHOD = "holm"
METHOD_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
TEST_NAME = "paired t-test over users"


def adjust_p(p: Sequence[float], method: str = METHOD) -> np.ndarray:
    """Multiple-testing adjusted p-values, in the input order (NaN counts as 1).

    ``holm``: Holm's step-down, family-wise error control under any dependence; ``bh``: Benjamini-Hochberg's
    step-up, false-discovery-rate control (independent or positively dependent tests)."""
    q = np.nan_to_num(np.asarray(p, np.float64), nan=1.0).clip(0.0, 1.0)
    m = len(q)
    if m == 0:
        return q
    order = np.argsort(q, kind="stable")
    ranked = q[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    elif method == "bh":
        adj = np.minimum.accumulate(np.minimum(1.0, ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    else:
        raise ValueError(f"unknown adjustment {method!r} (holm, bh)")
    out = np.empty(m)
    out[order] = adj
    return out


def _fmt_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


@dataclass
class Paired:
    """Model a minus model b over the users both were evaluated on. ``p``: the paired t-test's two-sided
    p-value; ``p_adj``: the same after the study-wide correction (None: not corrected)."""
    diff: float
    se: float
    n: int
    p: float = 1.0
    p_adj: float | None = None
    alpha: float = ALPHA
    method: str = METHOD

    @property
    def significant(self) -> bool:
        p = self.p if self.p_adj is None else self.p_adj
        return self.n > 1 and p < self.alpha

    def flipped(self) -> Paired:
        return Paired(-self.diff, self.se, self.n, self.p, self.p_adj, self.alpha, self.method)

    def words(self) -> str:
        head = f"{self.diff:+.4f} ± {self.se:.4f} over {self.n} users"
        if self.p_adj is None:
            return f"{head}, uncorrected p = {_fmt_p(self.p)}"
        verdict = "significant" if self.significant else "within noise"
        return f"{head}, {verdict} (adjusted p = {_fmt_p(self.p_adj)})"


def _paired_arrays(d: np.ndarray) -> Paired:
    d = d[np.isfinite(d)]
    n = len(d)
    if n < 2:
        return Paired(float(d.mean()) if n else 0.0, 0.0, n, 1.0)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0.0:  # every user the same difference: none at all, or a certain one
        return Paired(mean, 0.0, n, 1.0 if mean == 0.0 else 0.0)
    from scipy import stats

    p = float(2 * stats.t.sf(abs(mean / se), n - 1))
    return Paired(mean, se, n, p)


def paired(a: pd.Series, b: pd.Series) -> Paired:
    """Mean of a - b over the users both were evaluated on, its standard error and the paired t-test's
    (uncorrected) p-value."""
    return _paired_arrays((a - b).dropna().to_numpy(np.float64))


@dataclass
class PairwiseTests:
    """Every pair of models under each metric column, tested over users and corrected together."""
    tests: dict[tuple[str, str, str], Paired] = field(default_factory=dict)  # (column, a, b), a listed first
    alpha: float = ALPHA
    method: str = METHOD

    def get(self, a: str, b: str, col: str) -> Paired | None:
        if (col, a, b) in self.tests:
            return self.tests[(col, a, b)]
        t = self.tests.get((col, b, a))
        return None if t is None else t.flipped()

    @property
    def n_tests(self) -> int:
        return len(self.tests)

    def columns(self) -> list[str]:
        return list(dict.fromkeys(c for c, _, _ in self.tests))

    def count(self, col: str) -> tuple[int, int]:
        """(pairs tested, pairs that differ after the correction) under one column."""
        mine = [t for (c, _, _), t in self.tests.items() if c == col]
        return len(mine), sum(t.significant for t in mine)

    def users(self) -> int:
        return max((t.n for t in self.tests.values()), default=0)

    def description(self) -> str:
        """One sentence for the page: the test, the correction, how many tests, the alpha."""
        cols = self.columns()
        if not cols:
            return "No pairs of models to test."
        per = [self.count(c) for c in cols]
        families = ", ".join(f"{n} pairs of models under {c}" for c, (n, _) in zip(cols, per, strict=True))
        found = "; ".join(f"{s} of {n} pairs differ under {c}" for c, (n, s) in zip(cols, per, strict=True))
        return (f"Each difference between two models is a {TEST_NAME} on per-user values (up to {self.users()} "
                f"users). All {self.n_tests} such tests of this study ({families}) are corrected together with "
                f"{METHOD_NAMES.get(self.method, self.method)}'s method at alpha = {self.alpha:g}: a difference "
                f"is called only when its adjusted p-value is below alpha, otherwise it is reported as within "
                f"noise. {found[:1].upper() + found[1:]}.")


def _by_user(frame: pd.DataFrame, col: str) -> pd.Series:
    """One model's per-user values, indexed by user where the frame says which user each row is."""
    return frame.set_index("user")[col] if "user" in frame.columns else frame[col]


def pairwise_tests(per_user: dict[str, pd.DataFrame], columns: Sequence[str], alpha: float = ALPHA,
                   method: str = METHOD) -> PairwiseTests:
    """Paired t-tests for every pair of models on each of ``columns`` (models lacking a column skip it), with
    one multiple-testing adjustment over all of them."""
    raw: dict[tuple[str, str, str], Paired] = {}
    for col in columns:
        names = [n for n, f in per_user.items() if col in f]
        if len(names) < 2:
            continue
        wide = pd.concat({n: _by_user(per_user[n], col) for n in names}, axis=1).to_numpy(np.float64)
        for i, a in enumerate(names):
            for j in range(i + 1, len(names)):
                raw[(col, a, names[j])] = _paired_arrays(wide[:, i] - wide[:, j])
    keys = list(raw)
    adj = adjust_p([raw[k].p for k in keys], method)
    tests = {k: Paired(raw[k].diff, raw[k].se, raw[k].n, raw[k].p, float(q), alpha, method)
             for k, q in zip(keys, adj, strict=True)}
    return PairwiseTests(tests, alpha, method)


def discordant_pairs(x: pd.Series, y: pd.Series) -> list[tuple[str, str]]:
    """Pairs (a, b) with a ahead of b on ``x`` but behind it on ``y``, largest gap on ``y`` first."""
    names = list(x.index)
    pairs = [(a, b) for a in names for b in names if x[a] > x[b] and y[a] < y[b]]
    return sorted(pairs, key=lambda p: y[p[0]] - y[p[1]])
