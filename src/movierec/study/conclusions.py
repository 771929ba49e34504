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
        text = (f"Under full ranking, {best_full} ranks the held-out movie best "
                f"(NDCG@10 {table.at[best_full, full]:.4f})")
        runner = table[full].drop(best_full).idxmax() if len(table) > 1 else None
        if runner is not None:
            text += f"; against the runner-up {runner}: {cmp(best_full, runner, full).words()}."
        out.append(text)
    if has_sampled and best_full is not None:
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
        beaten = [n for n in table.index if n != p and table.at[n, full] < table.at[p, full]]
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
        if nov in table:
            ct_models = table[content]
            text += (f" Content models recommend less popular movies (novelty {ct_models[nov].min():.1f}-"
                     f"{ct_models[nov].max():.1f} bits against {table.loc[cf, nov].min():.1f}-"
                     f"{table.loc[cf, nov].max():.1f} for collaborative models) and cover up to "
                     f"{ct_models['Coverage@10 [full]'].max():.1%} of the catalogue, against "
                     f"{table.loc[cf, 'Coverage@10 [full]'].max():.1%}.")
        out.append(text)
    by_class = {}
    for n in table.index:
        if not settings.get(n, {}).get("diversity"):
            by_class.setdefault((model_class.get(n), settings.get(n, {}).get("layers")), n)
    if ("neumf", None) in by_class or any(k[0] == "neumf" for k in by_class):
        neumf = next(n for k, n in by_class.items() if k[0] == "neumf")
        for other in [n for k, n in by_class.items() if k[0] in ("gmf", "mlp")]:
            out.append(f"NeuMF against {other}: NDCG@10 [full] {cmp(neumf, other, full).words()}.")
    mlp3, mlp4 = by_class.get(("mlp", 3)), by_class.get(("mlp", 4))
    if mlp3 and mlp4:
        out.append(f"A fourth MLP layer: {mlp4} against {mlp3}, NDCG@10 [full] {cmp(mlp4, mlp3, full).words()}.")
    for n in table.index:
        alpha = settings.get(n, {}).get("diversity")
        if not alpha:
            continue
        base = by_class.get((model_class.get(n), settings.get(n, {}).get("layers")))
        if base is None or "ILD@10 [full]" not in table:
            continue
        d_ild = table.at[n, "ILD@10 [full]"] - table.at[base, "ILD@10 [full]"]
        d_cov = table.at[n, "Coverage@10 [full]"] - table.at[base, "Coverage@10 [full]"]
        out.append(f"The genre-diversity regulariser (weight {alpha}) on {base}: intra-list diversity "
                   f"{d_ild:+.3f}, catalogue coverage {d_cov:+.1%}, NDCG@10 [full] {cmp(n, base, full).words()}.")
    hybrids = table[fam == "hybrid"]
    vcol = "NDCG@10 [sampled-100, valid]"
    if len(hybrids) and vcol in table:
        h = str(hybrids[vcol].idxmax())
        s = settings.get(h, {})
        parts = [next((n for n in table.index if model_class.get(n) == part and not settings.get(n, {}).get(
            "diversity")), None) for part in (s.get("a"), s.get("b"))]
        parts = [p for p in parts if p is not None]
        text = f"The best hybrid on validation items is {h}"
        tuned = table.at[h, "tuned_weight"] if "tuned_weight" in table else None
        if tuned is not None and pd.notna(tuned):
            text += f" (validation gave {s.get('a')} a weight of {tuned:.1f})"
            if tuned in (0.0, 1.0):
                text += f", so it serves {s.get('a') if tuned == 1.0 else s.get('b')} alone"
        if parts:
            text += ". NDCG@10 [full] " + "; ".join(f"against {p}: {cmp(h, p, full).words()}" for p in parts)
        out.append(text + ".")
    seg = per_segment.get("full")
    if seg is not None and len(seg) > 2:
        rows = seg.drop(index="all", errors="ignore").drop(columns="users")
        winners = rows.idxmax(axis=1)
        fams = {s: table.at[w, "family"] for s, w in winners.items()}
        desc = "; ".join(f"{segment_names.get(s, s)}: {w} ({fams[s]})" for s, w in winners.items())
        out.append(f"By user segment (NDCG@10 [full]), the best model is: {desc}. Segments hold "
                   f"{int(rows.shape[0])} groups of {int(seg['users'].drop('all').min())}-"
                   f"{int(seg['users'].drop('all').max())} users, so per-segment differences carry wider "
                   "error bars than the overall ones.")
        spread = rows.max(axis=1)
        top = table[full].sort_values(ascending=False)
        model_gap = float(top.iloc[0] - top.iloc[min(2, len(top) - 1)])
        seg_gap = float(spread.max() - spread.min())
        lo, hi = spread.idxmin(), spread.idxmax()
        text = (f"The best model's NDCG@10 [full] ranges from {spread.min():.4f} in {segment_names.get(lo, lo)} to "
                f"{spread.max():.4f} in {segment_names.get(hi, hi)}, a gap of {seg_gap:.4f}; the top three models "
                f"overall lie within {model_gap:.4f} of each other.")
        if seg_gap > model_gap:
            text += " Who the user is matters more to accuracy than which of the good models serves them."
        out.append(text)
    return out
