"""Conclusions the numbers support: sentences generated from the study's own results.

Differences between two models are paired over the same users: the mean per-user difference and its
standard error; a difference counts as real only when it exceeds two standard errors ("within noise"
otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from movierec.models.registry import REGISTRY


@dataclass
class Paired:
    diff: float
    se: float
    n: int

    @property
    def significant(self) -> bool:
        return abs(self.diff) > 2 * self.se and self.se > 0

    def words(self) -> str:
        verdict = "beyond 2 standard errors" if self.significant else "within noise"
        return f"{self.diff:+.4f} ± {self.se:.4f} over {self.n} users, {verdict}"


def paired(a: pd.Series, b: pd.Series) -> Paired:
    """Mean of a - b over the users both were evaluated on, with its standard error."""
    d = (a - b).dropna().to_numpy(np.float64)
    if len(d) < 2:
        return Paired(float(d.mean()) if len(d) else 0.0, 0.0, len(d))
    return Paired(float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), len(d))


def discordant_pairs(x: pd.Series, y: pd.Series) -> list[tuple[str, str]]:
    """Pairs (a, b) with a ahead of b on ``x`` but behind it on ``y``, largest gap on ``y`` first."""
    names = list(x.index)
    pairs = [(a, b) for a in names for b in names if x[a] > x[b] and y[a] < y[b]]
    return sorted(pairs, key=lambda p: y[p[0]] - y[p[1]])


def _best(table: pd.DataFrame, col: str, mask: pd.Series | None = None) -> str | None:
    t = table if mask is None else table[mask]
    t = t[col].dropna() if col in t else pd.Series(dtype=float)
    return None if t.empty else str(t.idxmax())


def conclusions(table: pd.DataFrame, per_user: dict[str, pd.DataFrame], settings: dict[str, dict[str, Any]],
                model_class: dict[str, str], per_segment: dict[str, pd.DataFrame],
                segment_names: dict[str, str]) -> list[str]:
    """Sentences for the report. table: one row per model (index: name) with ``family`` and metric columns;
    per_user: {name: per-user frame with ``NDCG@10 [protocol]`` columns}; settings/model_class: each run's
    settings and model name; per_segment: {protocol: segment x model NDCG@10 table}."""
    out: list[str] = []
    full, sampled = "NDCG@10 [full]", "NDCG@10 [sampled-100]"
    has_sampled = sampled in table
    fam = table["family"]

    def cmp(a: str, b: str, col: str) -> Paired:
        return paired(per_user[a][col], per_user[b][col])

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
        text = f"Against the Popularity baseline, {best_full} gains {d.words()} (NDCG@10 [full])"
        beaten = [n for n in table.index if n != p and table.at[n, full] < table.at[p, full]]  # NaN: never
        if beaten:
            text += (f"; {len(beaten)} of the {len(table) - 1} other models rank the held-out movie worse than "
                     "Popularity")
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
