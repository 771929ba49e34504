"""iALS (Hu, Koren and Volinsky 2008): weighted matrix factorisation of the implicit matrix, solved by the
well-kept ``implicit`` library (conjugate-gradient alternating least squares, multi-threaded).

Every observed (user, item) pair has confidence c = ``alpha`` and target 1, every other pair weight 1 and
target 0; L2 weight ``regularization`` on all factors. With W the user and H the item factors, a user's
vector solves (HᵀH + Hᵤᵀ(c-1)Hᵤ + λI) w = c·Hᵤᵀ1 over the items Hᵤ of the user's history: that solve is
exact and vectorised here (numpy, one batched solve), so any history is folded in the same way, and the
fit ends with that user step so a trained user's own history gives exactly the trained user's scores.
Following Rendle et al. 2021 ("Revisiting the performance of iALS on item recommendation benchmarks"), the
factors, confidence and regularisation are tuned together on validation items (`movierec tune ials`; the
defaults are that search's best on ml-latest-small). Rendle's frequency-scaled regularisation is not
available in ``implicit``'s solver; a constant λ is used.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from movierec.data.dataset import Catalog, Interactions
from movierec.data.splits import HeldOut
from movierec.errors import MovieRecError
from movierec.models.base import History, Recommender, RunContext, binary_rows
from movierec.models.settings import Settings, setting

__all__ = ["IALS", "IALSSettings"]

_CHUNK_NNZ = 65536  # padded interactions per batched solve (memory: that many factor vectors)


class IALSSettings(Settings):
    # defaults: `movierec tune ials --data ml-latest-small --trials 25` (validation NDCG@10), 2026-11-30
    factors: int = setting(73, "latent factors per user and item", ge=1)
    regularization: float = setting(0.0426, "L2 weight λ on every factor vector", gt=0)
    alpha: float = setting(2.18, "confidence of an observed pair (unobserved pairs weigh 1)", gt=0)
    iterations: int = setting(16, "alternating least-squares sweeps", ge=1)
    seed: int = setting(42, "seed of the factors' initialisation", ge=0)


class IALS(Recommender):
    name = "ials"
    exact_history = True
    config_class = IALSSettings
    has_user_vectors = True
    has_item_vectors = True

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None, context: RunContext) -> None:
        try:
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError as exc:  # a core dependency; a broken install is the only way here
            raise MovieRecError("iALS needs the 'implicit' package: pip install implicit") from exc
        cfg = self.config
        # implicit's own threads do the work (its documented advice); its constructor checks the BLAS threads and
        # warns when they are more than one, so it is made inside the limit too
        with threadpool_limits(1, "blas"):
            als = AlternatingLeastSquares(factors=cfg.factors, regularization=cfg.regularization, alpha=cfg.alpha,
                                          iterations=cfg.iterations, random_state=cfg.seed, dtype=np.float32)
            als.fit(self.seen_.astype(np.float32), show_progress=False)
        self.item_factors_ = np.ascontiguousarray(als.item_factors, dtype=np.float32)
        self.user_factors_ = self._fold_in(self.seen_)

    def _fold_in(self, rows: sp.csr_matrix) -> np.ndarray:
        """User vectors float32 [n, factors] solving the user step for binary rows [n, n_items].

        Rows are taken in order of length, in groups of about ``_CHUNK_NNZ`` interactions; each group's item
        factors are gathered into a zero-padded [rows, longest, factors] block so that Σ hᵢhᵢᵀ is one batched
        matrix product."""
        rows = rows.tocsr()
        h = self.item_factors_
        n, d, c = rows.shape[0], h.shape[1], self.config.alpha
        h_pad, base = self._padded_and_gram()
        counts = np.diff(rows.indptr)
        order = np.argsort(counts, kind="stable")
        out = np.zeros((n, d), dtype=np.float32)
        sorted_counts = np.maximum(counts[order], 1)
        indices = np.append(rows.indices, h.shape[0])  # a last slot pointing at the zero padding row
        lo = 0
        while lo < n:  # one pass per group: rows of similar length, at most _CHUNK_NNZ padded slots
            window = sorted_counts[lo:lo + _CHUNK_NNZ]
            hi = lo + max(1, int(np.sum(np.arange(1, len(window) + 1) * window <= _CHUNK_NNZ)))
            group = order[lo:hi]
            longest = max(int(counts[group].max()), 1)
            slot = np.arange(longest)[None, :]
            idx = np.where(slot < counts[group][:, None], rows.indptr[group][:, None] + slot, len(indices) - 1)
            items = indices[idx]
            hu = h_pad[items]  # [rows, longest, d], zero rows past each history's end
            a = base + (c - 1.0) * np.matmul(hu.transpose(0, 2, 1), hu).astype(np.float64)
            b = c * hu.sum(axis=1, dtype=np.float64)
            out[group] = np.linalg.solve(a, b[:, :, None])[:, :, 0]
            lo = hi
        return out

    def _padded_and_gram(self) -> tuple[np.ndarray, np.ndarray]:
        """(item factors with a zero padding row [n_items + 1, d], HᵀH + λI float64 [d, d]) of the current item
        factors, made once per set of them (a new person's user step then costs only its own items)."""
        h = self.item_factors_
        cached = getattr(self, "_padded_and_gram_cache", None)
        if cached is None or cached[0] is not h:
            d = h.shape[1]
            h_pad = np.vstack([h, np.zeros((1, d), np.float32)])  # row n_items: padding
            base = (h.T.astype(np.float64) @ h) + self.config.regularization * np.eye(d)
            cached = self._padded_and_gram_cache = (h, h_pad, base)
        return cached[1], cached[2]

    def _read_users(self, inter: Interactions) -> None:
        self.user_factors_ = self._fold_in(self.seen_)  # the exact user step on the new rows

    # -- scoring -----------------------------------------------------------------------------------
    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        return self._scores(self.user_factors_[users], items)

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        return self._scores(self._fold_in(binary_rows(history.matrix(self.n_items))), items)

    def _scores(self, w: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        if items is None:
            return w @ self.item_factors_.T
        items = np.asarray(items, dtype=np.int64)
        return np.einsum("nd,nmd->nm", w, self.item_factors_[items])

    def user_vectors(self) -> np.ndarray:
        return self.user_factors_

    def item_vectors(self) -> np.ndarray:
        return self.item_factors_

    # -- persistence -------------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = np.asarray(state["user_factors"], dtype=np.float32)
        self.item_factors_ = np.asarray(state["item_factors"], dtype=np.float32)
