"""Conclusions the numbers support: sentences generated from the study's own results.

Each conclusion is a small *finding*: a function of the study's typed results (:class:`StudyResults`) that
returns its sentences, or none when the study lacks what it needs (a content model, a hybrid, segments...).
:data:`FINDINGS` lists them in the order the report shows them; :func:`conclusions` runs them all. A difference
between two models is called only when the study-wide corrected paired test says so (:mod:`.paired`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd

from movierec.evaluation.columns import column
from movierec.models.registry import REGISTRY
from movierec.study.paired import (
    ALPHA,
    METHOD,
    Paired,
    PairwiseTests,
    adjust_p,
    discordant_pairs,
    paired,
    pairwise_tests,
)

__all__ = ["ALPHA", "FINDINGS", "METHOD", "Paired", "PairwiseTests", "StudyResults", "adjust_p", "best_per_family",
           "conclusions", "family_order", "paired", "pairwise_tests", "tested_columns"]

FULL = column("NDCG@10", "full")
SAMPLED = column("NDCG@10", "sampled-100")
VALID = column("NDCG@10", "sampled-100", "valid")
NOVELTY, COVERAGE, ILD = column("Novelty@10", "full"), column("Coverage@10", "full"), column("ILD@10", "full")


def _best(table: pd.DataFrame, col: str, mask: pd.Series | None = None) -> str | None:
    t = table if mask is None else table[mask]
    t = t[col].dropna() if col in t else pd.Series(dtype=float)
    return None if t.empty else str(t.idxmax())


def tested_columns(table: pd.DataFrame) -> list[str]:
    """The metric columns whose pairs of models the study tests: NDCG@10 under each protocol present."""
    return [c for c in (FULL, SAMPLED) if c in table]


def family_order(families: Sequence[str]) -> list[str]:
    from movierec.models.registry import FAMILIES

    present = list(dict.fromkeys(families))
    return [f for f in FAMILIES if f in present] + [f for f in present if f not in FAMILIES]


def best_per_family(table: pd.DataFrame, tests: PairwiseTests, col: str = FULL) -> list[dict[str, Any]]:
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


@dataclass
class StudyResults:
    """What every finding reads. table: one row per model (index: its name) with ``family`` and the metric
    columns (:func:`movierec.evaluation.columns.column`); per_user: {name: per-user frame with ``NDCG@10
    [protocol]`` columns}; settings/model_class: each run's settings and model name; per_segment: {protocol:
    segment x model NDCG@10 table with a ``users`` column}; segment_names: {segment: its name}; tests: the
    study's corrected pairwise tests; split_protocol: "loo", ... (None: unknown)."""

    table: pd.DataFrame
    per_user: dict[str, pd.DataFrame]
    settings: dict[str, dict[str, Any]]
    model_class: dict[str, str]
    per_segment: dict[str, pd.DataFrame]
    segment_names: dict[str, str]
    tests: PairwiseTests
    split_protocol: str | None = None

    @property
    def family(self) -> pd.Series:
        return self.table["family"]

    @cached_property
    def best_full(self) -> str | None:
        """The best model under full ranking (NDCG@10), or None without that column."""
        return _best(self.table, FULL)

    def cmp(self, a: str, b: str, col: str) -> Paired:
        """Model a against model b on ``col``: the corrected test, or an uncorrected one (it says so)."""
        t = self.tests.get(a, b, col)
        return t if t is not None else paired(self.per_user[a][col], self.per_user[b][col])

    @cached_property
    def by_class(self) -> dict[tuple[str | None, Any], str]:
        """The first model without the diversity regulariser of each (model class, hidden layers)."""
        out: dict[tuple[str | None, Any], str] = {}
        for n in self.table.index:
            if not self.settings.get(n, {}).get("diversity"):
                out.setdefault((self.model_class.get(n), self.settings.get(n, {}).get("layers")), n)
        return out


Finding = Callable[[StudyResults], list[str]]


def best_under_full_ranking(r: StudyResults) -> list[str]:
    """The best model under full ranking, against the runner-up; then how many models it cannot be told from."""
    table, best = r.table, r.best_full
    if best is None:
        return []
    top = table.at[best, FULL]
    tied = [n for n in table.index if n != best and table.at[n, FULL] == top]
    if tied:
        text = f"Under full ranking, {best} and {', '.join(tied)} tie for best (NDCG@10 {top:.4f})"
    else:
        text = f"Under full ranking, {best} ranks the held-out movie best (NDCG@10 {top:.4f})"
    others = table[FULL].drop([best, *tied]).dropna()
    if len(others):
        runner = str(others.idxmax())
        text += f"; against the runner-up {runner}: {r.cmp(best, runner, FULL).words()}"
    out = [text + "."]
    n_pairs, n_sig = r.tests.count(FULL)
    if n_pairs:
        level = [n for n in table.index if n != best and not r.cmp(best, n, FULL).significant]
        if level:
            out.append(f"After the correction over all {r.tests.n_tests} paired tests, {len(level)} of the other "
                       f"{len(table) - 1} models cannot be told apart from {best} under full ranking: "
                       f"{', '.join(level)}. In all, {n_sig} of the {n_pairs} pairs differ.")
        else:
            out.append(f"{best} is ahead of each of the other {len(table) - 1} models after the correction; in "
                       f"all, {n_sig} of the {n_pairs} pairs of models differ under full ranking.")
    return out


def protocols_compared(r: StudyResults) -> list[str]:
    """The best under sampled-100, and the pairs of models the two protocols order differently."""
    table = r.table
    if SAMPLED not in table or r.best_full is None or len(table) < 2 or _best(table, SAMPLED) is None:
        return []
    best_s = _best(table, SAMPLED)
    same = "the same model" if best_s == r.best_full else f"a different model, {best_s}"
    flips = discordant_pairs(table[SAMPLED], table[FULL])
    n_pairs = len(table) * (len(table) - 1) // 2
    text = f"Under the NCF paper's sampled-100 protocol the best is {same} (NDCG@10 {table.at[best_s, SAMPLED]:.4f}). "
    if flips:
        a, b = flips[0]
        text += (f"The two protocols order {len(flips)} of the {n_pairs} pairs of models differently (e.g. {a} is "
                 f"ahead of {b} under sampled-100 but behind it under full ranking): sampled metrics can reverse "
                 "orderings, so the full-ranking columns are the ones to trust.")
    else:
        text += f"Both protocols order all {n_pairs} pairs of models the same way on this data."
    return [text]


def against_popularity(r: StudyResults) -> list[str]:
    """The best model against the Popularity baseline, and how many models rank below it."""
    table, best = r.table, r.best_full
    pop = [n for n in table.index if r.model_class.get(n) == "popularity"]
    if not pop or best is None or best == pop[0]:
        return []
    p = pop[0]
    text = f"Against the Popularity baseline, {best}'s NDCG@10 [full] differs by {r.cmp(best, p, FULL).words()}"
    beaten = [n for n in table.index if n != p and table.at[n, FULL] < table.at[p, FULL]]  # NaN: never
    if beaten:
        text += f"; {len(beaten)} of the {len(table) - 1} other models rank the held-out movie worse than Popularity"
    return [text + "."]


def best_of_each_family(r: StudyResults) -> list[str]:
    """The best model of each family, against the best overall."""
    best = r.best_full
    fams = best_per_family(r.table, r.tests, FULL) if best is not None else []
    if len(fams) < 2:
        return []
    parts = []
    for f in fams:
        d = f["against_best"]
        parts.append(f"{f['family']}: {f['best']} {f['value']:.4f}" + (
            " (the best overall)" if f["overall_best"] else f", against {best} {d.words()}" if d else ""))
    level = [f["family"] for f in fams if f["against_best"] is not None and not f["against_best"].significant]
    text = f"The best of each family under full ranking (NDCG@10 [full]): {'; '.join(parts)}."
    if level:
        text += (f" The best {' and '.join(level)} model{'s are' if len(level) > 1 else ' is'} within noise of "
                 f"{best}: the data do not separate {'these families' if len(level) > 1 else 'the families'} at "
                 "the top.")
    else:
        text += f" The family of {best} ({r.family[best]}) is ahead of the best of every other family."
    return [text]


def sequential_models(r: StudyResults) -> list[str]:
    """What sets the sequential models apart, and why leave-one-out suits them."""
    fam = r.family
    seq = [n for n in r.table.index if fam[n] == "sequential"]
    if not seq:
        return []
    seq_classes = {r.model_class.get(n) for n in seq}
    on_seq = [n for n in r.table.index if fam[n] != "sequential" and
              {r.settings.get(n, {}).get(k) for k in ("a", "b")} & seq_classes]
    many = len(seq) > 1
    text = (f"{', '.join(seq)} {'are' if many else 'is'} sequential: {'they read' if many else 'it reads'} each "
            f"user's ratings in the order they were made, while the other models"
            f"{' (apart from ' + ', '.join(on_seq) + ', built on them)' if on_seq else ''} treat a history as an "
            "unordered set")
    if r.split_protocol == "loo":
        text += ("; under leave-one-out the held-out movie is each user's latest rating, the next step of that "
                 "order, a test that suits sequential models")
    return [text + "."]


def _novelty_and_coverage(table: pd.DataFrame, content: pd.Series, cf: pd.Series) -> str:
    ct, co = table.loc[content], table.loc[cf]
    lo_ct, hi_ct, lo_cf, hi_cf = ct[NOVELTY].min(), ct[NOVELTY].max(), co[NOVELTY].min(), co[NOVELTY].max()
    text = ""
    if lo_ct > hi_cf:
        text += (f" Every content model recommends less popular movies than every collaborative one "
                 f"(novelty {lo_ct:.1f}-{hi_ct:.1f} bits against {lo_cf:.1f}-{hi_cf:.1f}).")
    elif hi_ct < lo_cf:
        text += (f" Every content model recommends more popular movies than every collaborative one "
                 f"(novelty {lo_ct:.1f}-{hi_ct:.1f} bits against {lo_cf:.1f}-{hi_cf:.1f}).")
    elif pd.notna(lo_ct) and pd.notna(lo_cf):
        text += (f" Their novelty ranges overlap ({lo_ct:.1f}-{hi_ct:.1f} bits for content models, "
                 f"{lo_cf:.1f}-{hi_cf:.1f} for collaborative ones).")
    return text + (f" The widest content model covers {ct[COVERAGE].max():.1%} of the catalogue, the widest "
                   f"collaborative one {co[COVERAGE].max():.1%}.")


def collaborative_against_content(r: StudyResults) -> list[str]:
    """The best collaborative model against the best content model: accuracy, novelty and coverage."""
    table = r.table
    cf, content = r.family == "collaborative", r.family == "content"
    best_cf, best_ct = _best(table, FULL, cf), _best(table, FULL, content)
    if not (best_cf and best_ct):
        return []
    d = r.cmp(best_cf, best_ct, FULL)
    if not d.significant:
        lead = "Collaborative and content-based filtering are level on full-ranking accuracy"
    elif d.diff > 0:
        lead = "Collaborative filtering beats content-based filtering on full-ranking accuracy"
    else:
        lead = "Content-based filtering beats collaborative filtering on full-ranking accuracy"
    text = f"{lead}: the best of each, {best_cf} against {best_ct}, NDCG@10 [full] {d.words()}"
    if SAMPLED in table:
        text += f"; sampled-100 {r.cmp(best_cf, best_ct, SAMPLED).words()}"
    text += "."
    if NOVELTY in table and COVERAGE in table:
        text += _novelty_and_coverage(table, content, cf)
    return [text]


def combined_against_parts(r: StudyResults) -> list[str]:
    """A model against the models it combines (NeuMF against GMF and MLP)."""
    first_of_class: dict[str | None, str] = {}
    for (cls, _), n in r.by_class.items():
        first_of_class.setdefault(cls, n)
    out = []
    for cls, n in first_of_class.items():
        combines = REGISTRY[cls].combines if cls in REGISTRY else ()
        for other in [m for k, m in r.by_class.items() if k[0] in combines]:
            out.append(f"{n} against {other}: NDCG@10 [full] {r.cmp(n, other, FULL).words()}.")
    return out


def one_more_layer(r: StudyResults) -> list[str]:
    """The same model class with one more hidden layer."""
    out = []
    for (cls, layers), n in r.by_class.items():
        deeper = r.by_class.get((cls, layers + 1)) if isinstance(layers, int) else None
        if deeper:
            out.append(f"One more hidden layer: {deeper} against {n}, NDCG@10 [full] "
                       f"{r.cmp(deeper, n, FULL).words()}.")
    return out


def diversity_regulariser(r: StudyResults) -> list[str]:
    """Each model with the genre-diversity regulariser against the same model without it."""
    table, out = r.table, []
    for n in table.index:
        alpha = r.settings.get(n, {}).get("diversity")
        if not alpha:
            continue
        base = r.by_class.get((r.model_class.get(n), r.settings.get(n, {}).get("layers")))
        if base is None or ILD not in table:
            continue
        d_ild = table.at[n, ILD] - table.at[base, ILD]
        d_cov = 100 * (table.at[n, COVERAGE] - table.at[base, COVERAGE])
        out.append(f"The genre-diversity regulariser (weight {alpha}) on {base}: intra-list diversity "
                   f"{d_ild:+.3f}, catalogue coverage {d_cov:+.1f} percentage points, NDCG@10 [full] "
                   f"{r.cmp(n, base, FULL).words()}.")
    return out


def best_hybrid(r: StudyResults) -> list[str]:
    """The hybrid best on validation: the weight it chose, and it against its parts."""
    table = r.table
    hybrids = table[r.family == "hybrid"]
    if not len(hybrids) or VALID not in table or not hybrids[VALID].notna().any():
        return []
    h = str(hybrids[VALID].idxmax())
    s = r.settings.get(h, {})
    text = f"The best hybrid on validation items is {h}"
    for col, verb in (("tuned_weight", "validation gave"), ("weight", "its configuration gives")):
        w = table.at[h, col] if col in table else None
        if w is not None and pd.notna(w):
            text += f" ({verb} {s.get('a')} a weight of {w:.1f}"
            text += f", so it serves {s.get('a') if w == 1.0 else s.get('b')} alone)" if w in (0.0, 1.0) else ")"
            break
    reused = table.at[h, "reused_parts"] if "reused_parts" in table else None
    parts = [p for p in reused if p in r.per_user] if isinstance(reused, list) else []
    if parts:
        text += ". NDCG@10 [full] " + "; ".join(f"against its part {p}: {r.cmp(h, p, FULL).words()}" for p in parts)
    else:
        text += "; its parts were trained inside it, with no stand-alone run in this study to compare against"
    return [text + "."]


def by_segment(r: StudyResults) -> list[str]:
    """The best model of each user segment, and how far the best model's accuracy moves across segments."""
    seg, table, best = r.per_segment.get("full"), r.table, r.best_full
    if seg is None or len(seg) <= 2 or len(table) < 3 or best is None:
        return []
    rows = seg.drop(index="all", errors="ignore").drop(columns="users")
    rows = rows[rows.notna().any(axis=1)]
    if not len(rows):
        return []
    names = r.segment_names
    winners = rows.idxmax(axis=1)
    fams = {s: table.at[w, "family"] for s, w in winners.items()}
    desc = "; ".join(f"{names.get(s, s)}: {w} ({fams[s]})" for s, w in winners.items())
    users = seg["users"].drop("all")
    out = [f"By user segment (NDCG@10 [full]), the best model is: {desc}. The {len(rows)} segments hold "
           f"{int(users.min())}-{int(users.max())} users each, so per-segment differences carry wider error bars "
           "than the overall ones."]
    col = rows[best]  # the overall best model, segment by segment
    top = table[FULL].dropna().sort_values(ascending=False)
    model_gap = float(top.iloc[0] - top.iloc[2])
    seg_gap = float(col.max() - col.min())
    lo, hi = col.idxmin(), col.idxmax()
    text = (f"{best}'s NDCG@10 [full] ranges from {col.min():.4f} in {names.get(lo, lo)} to {col.max():.4f} in "
            f"{names.get(hi, hi)}, a spread of {seg_gap:.4f}; the top three models overall lie within "
            f"{model_gap:.4f} of each other.")
    if seg_gap > model_gap:
        text += " Who the user is matters more to accuracy than which of the good models serves them."
    out.append(text)
    return out


#: the findings, in the order the report shows them
FINDINGS: list[Finding] = [best_under_full_ranking, protocols_compared, against_popularity, best_of_each_family,
                           sequential_models, collaborative_against_content, combined_against_parts, one_more_layer,
                           diversity_regulariser, best_hybrid, by_segment]


def conclusions(table: pd.DataFrame, per_user: dict[str, pd.DataFrame], settings: dict[str, dict[str, Any]],
                model_class: dict[str, str], per_segment: dict[str, pd.DataFrame],
                segment_names: dict[str, str], tests: PairwiseTests | None = None,
                split_protocol: str | None = None) -> list[str]:
    """The report's sentences: every finding of :data:`FINDINGS` on these results (see :class:`StudyResults`;
    ``tests`` is computed here from ``per_user`` when not given)."""
    if tests is None:
        tests = pairwise_tests(per_user, tested_columns(table))
    results = StudyResults(table, per_user, settings, model_class, per_segment, segment_names, tests,
                           split_protocol)
    return [sentence for finding in FINDINGS for sentence in finding(results)]
