"""Content-based recommender: a user profile in item-feature space, matched against every movie.

profile(u) = sum over the user's training ratings of (r_ui - mean_u) * x_i, where x_i is the movie's
feature row (:mod:`movierec.data.features`); users whose ratings are all equal (or implicit data) weight every
movie 1. score(u, i) = similarity(profile(u), x_i) by the chosen measure (dot, cosine, or negative
Euclidean distance). A user with an empty profile gets the movies' training popularity instead. A new
person's history (:meth:`ContentRecommender.score_history`) gets its profile by the same formula.

With ``prior = "learned"`` (the default) the score is a blend, w₁·z(similarity) + w₂·z(log popularity) +
w₃·z(mean rating), where z standardises the similarity over each user's row and the two item priors over
the catalogue; the three weights maximise the likelihood of each validation item under a softmax over all
items the user has not trained on (L-BFGS). The match alone ranks every movie of the right genres alike,
obscure or not; the priors say which of them people actually watch and like, and the validation items say
how much of each to use. The item representation stays content only (the priors are one number per item,
the same for everyone). ``prior = "none"`` is the classic match alone.

Tags enter the features only through training interactions (a tag whose (user, movie) pair is not a
training rating is dropped), so held-out ratings cannot leak through their tags.
"""

from __future__ import annotations

import numpy as np
import pydantic
import scipy.sparse as sp

from movierec.data.dataset import Catalog, Interactions
from movierec.data.sampling import positive_keys
from movierec.data.splits import HeldOut
from movierec.errors import MovieRecError
from movierec.models.base import FitReport, History, Recommender, RunContext, binary_rows
from movierec.models.settings import Settings, setting

__all__ = ["ContentRecommender", "ContentSettings"]


class ContentSettings(Settings):
    features: str = setting("all", "feature kinds, comma-separated: genres, weighted-genres, tags, genome, year, all")
    measure: str = setting("cosine", "similarity of profile and movie", choices=("dot", "cosine", "euclidean"))
    min_tag_movies: int = setting(2, "a tag becomes a feature when it is on at least this many movies", ge=1)
    prior: str = setting("learned", "blend the match with item priors (popularity, mean rating) by weights "
                         "learned on validation, or use the match alone", choices=("learned", "none"))
    blend: list[float] = setting(help="with prior = learned: the four blend weights (rated match, watched match, "
                                 "popularity, mean rating); empty: learned on the validation items",
                                 default_factory=list)

    @pydantic.model_validator(mode="after")
    def _four_weights(self) -> ContentSettings:
        if self.blend and len(self.blend) != 4:
            raise ValueError(f"blend takes 4 weights (rated, watched, popularity, mean rating), got {len(self.blend)}")
        return self


def training_tag_pairs(catalog: Catalog, train: Interactions) -> tuple[np.ndarray, np.ndarray] | None:
    """(userId, movieId) pairs of tags to drop: those on rated pairs that are not training ratings."""
    if catalog.tags is None or not len(catalog.tags) or catalog.user_ids is None:
        return None
    tags = catalog.tags
    uid = tags["userId"].to_numpy(np.int64)
    mid = tags["movieId"].to_numpy(np.int64)
    users, items = catalog.user_ids, catalog.item_ids
    u_pos = np.clip(np.searchsorted(users, uid), 0, len(users) - 1)
    i_pos = np.clip(np.searchsorted(items, mid), 0, len(items) - 1)
    known = (users[u_pos] == uid) & (items[i_pos] == mid)
    train_keys = positive_keys(train.user, train.item, train.n_items)
    q = u_pos.astype(np.int64) * train.n_items + i_pos
    at = np.clip(np.searchsorted(train_keys, q), 0, max(len(train_keys) - 1, 0))
    in_train = known & (train_keys[at] == q) if len(train_keys) else np.zeros(len(q), bool)
    drop = known & ~in_train  # held-out or unrated-by-rating pairs of known users and movies
    return uid[drop], mid[drop]


def item_feature_matrix(catalog: Catalog | None, train: Interactions, kinds: str, min_tag_movies: int = 2):
    """Feature rows aligned with the training item indices (leak-free tags). Returns ItemFeatures."""
    from movierec.data.features import build_item_features

    if catalog is None or catalog.item_ids is None:
        raise MovieRecError("content-based models need the dataset's movie catalogue (movies.csv)")
    try:
        return build_item_features(catalog, catalog.item_ids, kinds, train=train,
                                   exclude_tag_pairs=training_tag_pairs(catalog, train), min_df=min_tag_movies)
    except ValueError as e:
        raise MovieRecError(str(e)) from None


_BLEND_USERS = 2000  # validation rows used to learn the blend (memory: 4 x rows x n_items doubles)
_DEFAULT_BLEND = np.array([0.5, 0.5, 1.0, 0.0], np.float32)  # without validation items: match plus popularity
_PRIOR_SHRINK = 10.0  # a movie's mean rating is shrunk towards the global mean by this many pseudo-ratings


def _standardise(v: np.ndarray) -> np.ndarray:
    sd = float(v.std())
    return ((v - v.mean()) / sd if sd > 0 else np.zeros_like(v)).astype(np.float32)


def _item_priors(train: Interactions | None, popularity: np.ndarray) -> np.ndarray:
    """[2, n_items] float32: standardised log(1 + training ratings) and standardised shrunk mean rating."""
    pop = _standardise(np.log1p(popularity.astype(np.float64)))
    if train is None or not len(train):
        return np.stack([pop, np.zeros_like(pop)])
    total = np.bincount(train.item, weights=train.rating.astype(np.float64), minlength=train.n_items)
    mean = (total + _PRIOR_SHRINK * float(train.rating.mean())) / (popularity + _PRIOR_SHRINK)
    return np.stack([pop, _standardise(mean)])


def user_weights(train: Interactions) -> sp.csr_matrix:
    """[n_users, n_items] weights r_ui - mean_u (1 for users with no rating spread)."""
    r = train.rating.astype(np.float64)
    counts = np.bincount(train.user, minlength=train.n_users)
    mean = np.bincount(train.user, weights=r, minlength=train.n_users) / np.maximum(counts, 1)
    dev = r - mean[train.user]
    spread = np.bincount(train.user, weights=np.abs(dev), minlength=train.n_users)
    w = np.where(spread[train.user] > 0, dev, 1.0)
    m = sp.csr_matrix((w.astype(np.float32), (train.user, train.item)), shape=(train.n_users, train.n_items))
    m.sum_duplicates()
    return m


def row_sq_norms(x: sp.csr_matrix) -> np.ndarray:
    """float [n] the squared norm of each row of ``x``."""
    return np.asarray(x.multiply(x).sum(axis=1)).ravel()


def match(profiles: sp.csr_matrix, x: sp.csr_matrix, measure: str, x_sq_norms: np.ndarray | None = None
          ) -> np.ndarray:
    """Similarity of profile rows [n, F] to item rows [n_items, F]: float32 [n, n_items]. ``x_sq_norms``: the
    items' :func:`row_sq_norms`, when the caller keeps them."""
    if measure == "dot":
        return np.asarray((profiles @ x.T).toarray(), dtype=np.float32)
    xn2 = row_sq_norms(x) if x_sq_norms is None else x_sq_norms
    if measure == "cosine":
        pn = np.sqrt(np.asarray(profiles.multiply(profiles).sum(axis=1))).ravel()
        xn = np.sqrt(xn2)
        dots = np.asarray((profiles @ x.T).toarray(), dtype=np.float64)
        denom = pn[:, None] * xn[None, :]
        return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0).astype(np.float32)
    if measure == "euclidean":
        pn2 = np.asarray(profiles.multiply(profiles).sum(axis=1)).ravel()
        d2 = pn2[:, None] + xn2[None, :] - 2 * np.asarray((profiles @ x.T).toarray())
        return (-np.sqrt(np.maximum(d2, 0))).astype(np.float32)
    raise MovieRecError(f"unknown measure {measure!r} (expected dot, cosine or euclidean)")


class ContentRecommender(Recommender):
    name = "content"
    exact_history = True
    config_class = ContentSettings

    def _fit(self, train: Interactions, catalog: Catalog | None, valid: HeldOut | None,
             context: RunContext) -> FitReport | None:
        feats = item_feature_matrix(catalog, train, self.config.features, self.config.min_tag_movies)
        self.x_ = feats.matrix.tocsr().astype(np.float32)
        self.feature_names_ = feats.names
        self.profiles_ = (user_weights(train) @ self.x_).tocsr()
        self.popularity_ = np.asarray(self.seen_.sum(axis=0), dtype=np.float32).ravel()
        self.priors_ = _item_priors(train, self.popularity_)
        self.blend_ = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
        if self.config.prior == "learned":
            self.blend_ = _DEFAULT_BLEND.copy()
            learned = not self.config.blend and valid is not None and len(valid) > 0
            if self.config.blend:
                self.blend_ = np.asarray(self.config.blend, dtype=np.float32)
            elif learned:
                self.blend_ = self._learn_blend(valid, context.seed if context.seed is not None else 0)
            report = FitReport(chosen=dict(zip(("w_rated", "w_watched", "w_popularity", "w_mean_rating"),
                                               (round(float(w), 4) for w in self.blend_), strict=True)))
            report.tuned = learned
            return report
        return None

    def chosen_settings(self) -> dict:
        """The blend weights learned on validation (exactly, as the float32 values scored with)."""
        if self.fit_report_ is None or self.config.prior != "learned":
            return {}
        return {"blend": [float(w) for w in self.blend_]}

    def _learn_blend(self, valid: HeldOut, seed: int) -> np.ndarray:
        """Weights [4] maximising the mean log-softmax of each validation item among the user's untrained items
        (at most ``_BLEND_USERS`` validation rows, sampled with ``seed``)."""
        from scipy.optimize import minimize

        rows = np.arange(len(valid))
        if len(rows) > _BLEND_USERS:
            rows = np.sort(np.random.default_rng(seed).choice(rows, _BLEND_USERS, replace=False))
        users, items = valid.user[rows].astype(np.int64), valid.item[rows].astype(np.int64)
        feats = self._features(self.profiles_[users], self.seen_[users]).astype(np.float64)  # [4, n, n_items]
        seen = self.seen_[users].toarray() > 0
        seen[np.arange(len(users)), items] = False
        feats[:, seen] = 0.0
        pos = feats[:, np.arange(len(users)), items]  # [4, n]

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            logits = np.tensordot(w, feats, axes=1)
            logits[seen] = -np.inf
            top = logits.max(axis=1, keepdims=True)
            p = np.exp(logits - top)
            z = p.sum(axis=1, keepdims=True)
            p /= z
            value = float(np.mean(np.log(z[:, 0]) + top[:, 0] - w @ pos))
            grad = (np.einsum("kni,ni->k", feats, p) - pos.sum(axis=1)) / len(users)
            return value, grad

        res = minimize(loss, _DEFAULT_BLEND.astype(np.float64), jac=True, method="L-BFGS-B")
        return res.x.astype(np.float32)

    def _features(self, profiles: sp.csr_matrix, rows: sp.csr_matrix) -> np.ndarray:
        """[4, n, n_items]: the rating-weighted profile's match and the watched profile's match (the mean
        features of every movie in the row), each standardised over the row, then the two item priors."""
        out = np.empty((4, profiles.shape[0], self.x_.shape[0]), np.float32)
        watched = (binary_rows(rows) @ self.x_).tocsr()
        for k, prof in enumerate((profiles, watched)):
            s = match(prof, self.x_, self.config.measure, self._x_sq_norms())
            sd = s.std(axis=1, keepdims=True)
            out[k] = np.divide(s - s.mean(axis=1, keepdims=True), sd, out=np.zeros_like(s), where=sd > 0)
        out[2:] = self.priors_[:, None, :]
        return out

    def _score_profiles(self, profiles: sp.csr_matrix, rows: sp.csr_matrix) -> np.ndarray:
        if self.config.prior == "learned":
            return np.tensordot(self.blend_, self._features(profiles, rows), axes=1).astype(np.float32)
        s = match(profiles, self.x_, self.config.measure, self._x_sq_norms())
        empty = np.diff(profiles.indptr) == 0
        if empty.any():  # no profile: fall back to popularity, scaled below any real similarity
            s[empty] = self.popularity_ / max(float(self.popularity_.max()), 1.0)
        return s

    def score(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        return self._gather(self._score_profiles(self.profiles_[users], self.seen_[users]), items)

    def _read_users(self, inter: Interactions) -> None:
        self.profiles_ = (user_weights(inter) @ self.x_).tocsr()

    def _score_history(self, history: History, items: np.ndarray | None) -> np.ndarray:
        """The profile of each history is built as a trained user's (rating-weighted), so a trained user's own
        training ratings give exactly that user's scores."""
        profiles = (user_weights(history.as_interactions(self.n_items)) @ self.x_).tocsr()
        return self._gather(self._score_profiles(profiles, history.matrix(self.n_items)), items)

    def _x_sq_norms(self) -> np.ndarray:
        """:func:`row_sq_norms` of the item features ``x_``, made once per feature matrix."""
        cached = getattr(self, "_x_sq_norms_cache", None)
        if cached is None or cached[0] is not self.x_:
            cached = self._x_sq_norms_cache = (self.x_, row_sq_norms(self.x_))
        return cached[1]

    def item_similarity(self, items: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
        """Cosine of the items' content feature rows (what the profile match compares)."""
        x = self.x_
        norms = np.sqrt(self._x_sq_norms())
        a = np.asarray(items, dtype=np.int64)
        b = np.arange(x.shape[0]) if others is None else np.asarray(others, dtype=np.int64)
        s = np.asarray((x[a] @ x[b].T).toarray(), dtype=np.float32)
        return s / np.maximum(np.outer(norms[a], norms[b]), 1e-12).astype(np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {"x.data": self.x_.data, "x.indices": self.x_.indices.astype(np.int32),
                "x.indptr": self.x_.indptr.astype(np.int64), "x.shape": np.array(self.x_.shape, np.int64),
                "popularity": self.popularity_, "priors": self.priors_, "blend": self.blend_,
                "profiles.data": self.profiles_.data,
                "profiles.indices": self.profiles_.indices.astype(np.int32),
                "profiles.indptr": self.profiles_.indptr.astype(np.int64)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        shape = tuple(int(v) for v in state["x.shape"])
        self.x_ = sp.csr_matrix((state["x.data"], state["x.indices"], state["x.indptr"]), shape=shape)
        self.popularity_ = state["popularity"]
        self.priors_ = state["priors"] if "priors" in state else _item_priors(None, self.popularity_)
        if "blend" in state:
            self.blend_ = state["blend"]
        else:  # a bundle saved before the blend existed scores by the match alone, as it did then
            self.config = self.config.with_values(prior="none")
            self.blend_ = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
        self.profiles_ = sp.csr_matrix((state["profiles.data"], state["profiles.indices"], state["profiles.indptr"]),
                                       shape=(self.seen_.shape[0], shape[1]))
