"""Conclusions the numbers support: sentences generated from the study's own results.

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
from typing import Any

import numpy as np
import pandas as pd

from movierec.models.registry import REGISTRY

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


def _best(table: pd.DataFrame, col: str, mask: pd.Series | None = None) -> str | None:
    t = table if mask is None else table[mask]
    t = t[col].dropna() if col in t else pd.Series(dtype=float)
    return None if t.empty else str(t.idxmax())


def tested_columns(table: pd.DataFrame) -> list[str]:
    """The metric columns whose pairs of models the study tests: NDCG@10 under each protocol present."""
    return [c for c in ("NDCG@10 [full]", "NDCG@10 [sampled-100]") if c in table]


def family_order(families: Sequence[str]) -> list[str]:
    from movierec.models.registry import FAMILIES

    present = list(dict.fromkeys(families))
    return [f for f in FAMILIES if f in present] + [f for f in present if f not in FAMILIES]


def best_per_family(table: pd.DataFrame, tests: PairwiseTests, col: str = "NDCG@10 [full]") -> list[dict[str, Any]]:
    """One row per family present: its best model on ``col``, how many models it has, and that model against
    the overall best (None for the overall best itself)."""
    best = _best(table, col)
    rows = []
    for f in family_order(table["family"].tolist()):
        mask = table["family"] == f
        b = _best(table, col, mask)
        if b is None:
            continue
        rows.append({"family": f, "best": b, "value": float(table.at[b, col]), "models": int(mask.sum()),
                     "overall_best": b == best, "against_best": None if b == best else tests.get(b, best, col)})
    return rows


def conclusions(table: pd.DataFrame, per_user: dict[str, pd.DataFrame], settings: dict[str, dict[str, Any]],
                model_class: dict[str, str], per_segment: dict[str, pd.DataFrame],
                segment_names: dict[str, str], tests: PairwiseTests | None = None,
                split_protocol: str | None = None) -> list[str]:
    """Sentences for the report. table: one row per model (index: name) with ``family`` and metric columns;
    per_user: {name: per-user frame with ``NDCG@10 [protocol]`` columns}; settings/model_class: each run's
    settings and model name; per_segment: {protocol: segment x model NDCG@10 table}; tests: the study's
    corrected pairwise tests (computed here from per_user when not given)."""
    out: list[str] = []
    full, sampled = "NDCG@10 [full]", "NDCG@10 [sampled-100]"
    has_sampled = sampled in table
    fam = table["family"]
    if tests is None:
        tests = pairwise_tests(per_user, tested_columns(table))

    def cmp(a: str, b: str, col: str) -> Paired:
        t = tests.get(a, b, col)
        return t if t is not None else paired(per_user[a][col], per_user[b][col])  # uncorrected, says so

    best_full = _best(table, full)
    if best_full is not None:
        top = table.at[best_full, full]
        tied = [n for n in table.index if n != best_full and table.at[n, full] == top]
        if tied:
            text = (f"Under full ranking, {best_full} and {', '.join(tied)} tie for best "
                    f"(NDCG@10 {top:.4f})")
        else:
            text = f"Under full ranking, {best_full} ranks the held-out movie best (NDCG@10 {top:.4f})"
        others = table[full].drop([best_full, *tied]).dropna()
        if len(others):
            runner = str(others.idxmax())
            text += f"; against the runner-up {runner}: {cmp(best_full, runner, full).words()}"
        out.append(text + ".")
        n_pairs, n_sig = tests.count(full)
        if n_pairs:
            level = [n for n in table.index if n != best_full and not cmp(best_full, n, full).significant]
            if level:
                out.append(f"After the correction over all {tests.n_tests} paired tests, {len(level)} of the other "
                           f"{len(table) - 1} models cannot be told apart from {best_full} under full ranking: "
                           f"{', '.join(level)}. In all, {n_sig} of the {n_pairs} pairs differ.")
            else:
                out.append(f"{best_full} is ahead of each of the other {len(table) - 1} models after the "
                           f"correction; in all, {n_sig} of the {n_pairs} pairs of models differ under full ranking.")
    if has_sampled and best_full is not None and len(table) > 1 and _best(table, sampled) is not None:
        best_s = _best(table, sampled)
        same = "the same model" if best_s == best_full else f"a different model, {best_s}"
        flips = discordant_pairs(table[sampled], table[full])
        n_pairs = len(table) * (len(table) - 1) // 2
        text = (f"Under the NCF paper's sampled-100 protocol the best is {same} (NDCG@10 "
                f"{table.at[best_s, sampled]:.4f}). ")
        if flips:
            a, b = flips[0]
            text += (f"The two protocols order {len(flips)} of the {n_pairs} pairs of models differently (e.g. "
                     f"{a} is ahead of {b} under sampled-100 but behind it under full ranking): sampled metrics "
                     "can reverse orderings, so the full-ranking columns are the ones to trust.")
        else:
            text += f"Both protocols order all {n_pairs} pairs of models the same way on this data."
        out.append(text)
    pop = [n for n in table.index if model_class.get(n) == "popularity"]
    if pop and best_full is not None and best_full != pop[0]:
        p = pop[0]
        d = cmp(best_full, p, full)
        text = f"Against the Popularity baseline, {best_full}'s NDCG@10 [full] differs by {d.words()}"
        beaten = [n for n in table.index if n != p and table.at[n, full] < table.at[p, full]]  # NaN: never
        if beaten:
            text += (f"; {len(beaten)} of the {len(table) - 1} other models rank the held-out movie worse than "
                     "Popularity")
        out.append(text + ".")
    fams = best_per_family(table, tests, full) if best_full is not None else []
    if len(fams) > 1:
        parts = []
        for r in fams:
            d = r["against_best"]
            parts.append(f"{r['family']}: {r['best']} {r['value']:.4f}" + (
                " (the best overall)" if r["overall_best"] else f", against {best_full} {d.words()}" if d else ""))
        level = [r["family"] for r in fams if r["against_best"] is not None and not r["against_best"].significant]
        text = f"The best of each family under full ranking (NDCG@10 [full]): {'; '.join(parts)}."
        if level:
            text += (f" The best {' and '.join(level)} model{'s are' if len(level) > 1 else ' is'} within noise of "
                     f"{best_full}: the data do not separate {'these families' if len(level) > 1 else 'the families'}"
                     " at the top.")
        else:
            text += f" The family of {best_full} ({fam[best_full]}) is ahead of the best of every other family."
        out.append(text)
    seq = [n for n in table.index if fam[n] == "sequential"]
    if seq:
        seq_classes = {model_class.get(n) for n in seq}
        on_seq = [n for n in table.index if fam[n] != "sequential" and
                  {settings.get(n, {}).get(k) for k in ("a", "b")} & seq_classes]
        many = len(seq) > 1
        text = (f"{', '.join(seq)} {'are' if many else 'is'} sequential: {'they read' if many else 'it reads'}"
                f" each user's ratings in the order they were made, while the other models"
                f"{' (apart from ' + ', '.join(on_seq) + ', built on them)' if on_seq else ''} treat a history as an "
                "unordered set")
        if split_protocol == "loo":
            text += ("; under leave-one-out the held-out movie is each user's latest rating, the next step of that "
                     "order, a test that suits sequential models")
        out.append(text + ".")
    cf, content = fam == "collaborative", fam == "content"
    best_cf, best_ct = _best(table, full, cf), _best(table, full, content)
    if best_cf and best_ct:
        nov = "Novelty@10 [full]"
        d = cmp(best_cf, best_ct, full)
        if not d.significant:
            lead = "Collaborative and content-based filtering are level on full-ranking accuracy"
        elif d.diff > 0:
            lead = "Collaborative filtering beats content-based filtering on full-ranking accuracy"
        else:
            lead = "Content-based filtering beats collaborative filtering on full-ranking accuracy"
        text = f"{lead}: the best of each, {best_cf} against {best_ct}, NDCG@10 [full] {d.words()}"
        if has_sampled:
            text += f"; sampled-100 {cmp(best_cf, best_ct, sampled).words()}"
        text += "."
        if nov in table and "Coverage@10 [full]" in table:
            ct, co = table.loc[content], table.loc[cf]
            lo_ct, hi_ct, lo_cf, hi_cf = ct[nov].min(), ct[nov].max(), co[nov].min(), co[nov].max()
            if lo_ct > hi_cf:
                text += (f" Every content model recommends less popular movies than every collaborative one "
                         f"(novelty {lo_ct:.1f}-{hi_ct:.1f} bits against {lo_cf:.1f}-{hi_cf:.1f}).")
            elif hi_ct < lo_cf:
                text += (f" Every content model recommends more popular movies than every collaborative one "
                         f"(novelty {lo_ct:.1f}-{hi_ct:.1f} bits against {lo_cf:.1f}-{hi_cf:.1f}).")
            elif pd.notna(lo_ct) and pd.notna(lo_cf):
                text += (f" Their novelty ranges overlap ({lo_ct:.1f}-{hi_ct:.1f} bits for content models, "
                         f"{lo_cf:.1f}-{hi_cf:.1f} for collaborative ones).")
            cov = "Coverage@10 [full]"
            text += (f" The widest content model covers {ct[cov].max():.1%} of the catalogue, the widest "
                     f"collaborative one {co[cov].max():.1%}.")
        out.append(text)
    by_class = {}
    for n in table.index:
        if not settings.get(n, {}).get("diversity"):
            by_class.setdefault((model_class.get(n), settings.get(n, {}).get("layers")), n)
    first_of_class: dict[str, str] = {}
    for (cls, _), n in by_class.items():
        first_of_class.setdefault(cls, n)
    for cls, n in first_of_class.items():  # a model against the models it combines (NeuMF: GMF and MLP)
        combines = REGISTRY[cls].combines if cls in REGISTRY else ()
        for other in [m for k, m in by_class.items() if k[0] in combines]:
            out.append(f"{n} against {other}: NDCG@10 [full] {cmp(n, other, full).words()}.")
    for (cls, layers), n in by_class.items():  # one more hidden layer, same model class
        deeper = by_class.get((cls, layers + 1)) if isinstance(layers, int) else None
        if deeper:
            out.append(f"One more hidden layer: {deeper} against {n}, NDCG@10 [full] "
                       f"{cmp(deeper, n, full).words()}.")
    for n in table.index:
        alpha = settings.get(n, {}).get("diversity")
        if not alpha:
            continue
        base = by_class.get((model_class.get(n), settings.get(n, {}).get("layers")))
        if base is None or "ILD@10 [full]" not in table:
            continue
        d_ild = table.at[n, "ILD@10 [full]"] - table.at[base, "ILD@10 [full]"]
        d_cov = 100 * (table.at[n, "Coverage@10 [full]"] - table.at[base, "Coverage@10 [full]"])
        out.append(f"The genre-diversity regulariser (weight {alpha}) on {base}: intra-list diversity "
                   f"{d_ild:+.3f}, catalogue coverage {d_cov:+.1f} percentage points, NDCG@10 [full] "
                   f"{cmp(n, base, full).words()}.")
    hybrids = table[fam == "hybrid"]
    vcol = "NDCG@10 [sampled-100, valid]"
    if len(hybrids) and vcol in table and hybrids[vcol].notna().any():
        h = str(hybrids[vcol].idxmax())
        s = settings.get(h, {})
        text = f"The best hybrid on validation items is {h}"
        for col, verb in (("tuned_weight", "validation gave"), ("weight", "its configuration gives")):
            w = table.at[h, col] if col in table else None
            if w is not None and pd.notna(w):
                text += f" ({verb} {s.get('a')} a weight of {w:.1f}"
                text += f", so it serves {s.get('a') if w == 1.0 else s.get('b')} alone)" if w in (0.0, 1.0) else ")"
                break
        reused = table.at[h, "reused_parts"] if "reused_parts" in table else None
        parts = [p for p in reused if p in per_user] if isinstance(reused, list) else []
        if parts:
            text += ". NDCG@10 [full] " + "; ".join(f"against its part {p}: {cmp(h, p, full).words()}" for p in parts)
        else:
            text += "; its parts were trained inside it, with no stand-alone run in this study to compare against"
        out.append(text + ".")
    seg = per_segment.get("full")
    if seg is not None and len(seg) > 2 and len(table) >= 3 and best_full is not None:
        rows = seg.drop(index="all", errors="ignore").drop(columns="users")
        rows = rows[rows.notna().any(axis=1)]
        if len(rows):
            winners = rows.idxmax(axis=1)
            fams = {s: table.at[w, "family"] for s, w in winners.items()}
            desc = "; ".join(f"{segment_names.get(s, s)}: {w} ({fams[s]})" for s, w in winners.items())
            users = seg["users"].drop("all")
            out.append(f"By user segment (NDCG@10 [full]), the best model is: {desc}. The {len(rows)} segments "
                       f"hold {int(users.min())}-{int(users.max())} users each, so per-segment differences carry "
                       "wider error bars than the overall ones.")
            col = rows[best_full]  # the overall best model, segment by segment
            top = table[full].dropna().sort_values(ascending=False)
            model_gap = float(top.iloc[0] - top.iloc[2])
            seg_gap = float(col.max() - col.min())
            lo, hi = col.idxmin(), col.idxmax()
            text = (f"{best_full}'s NDCG@10 [full] ranges from {col.min():.4f} in {segment_names.get(lo, lo)} to "
                    f"{col.max():.4f} in {segment_names.get(hi, hi)}, a spread of {seg_gap:.4f}; the top three "
                    f"models overall lie within {model_gap:.4f} of each other.")
            if seg_gap > model_gap:
                text += " Who the user is matters more to accuracy than which of the good models serves them."
            out.append(text)
    return out
