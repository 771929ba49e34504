"""Item x feature matrices for content-based similarity, and the similarity measures over them.

:func:`build_item_features` turns a :class:`~movierec.data.dataset.Catalog` into a sparse float32
matrix [n_items, n_features] whose rows follow a given list of raw movie ids. Feature kinds:

- ``genres``: multi-hot genres ("genre:Comedy"); "(no genres listed)" is dropped.
- ``weighted-genres``: the seed study's representation: each genre flag times the movie's mean
  *training* rating (``train``, aligned with the rows); movies without a training rating get the global
  training mean. Only training ratings are read, so no held-out rating leaks into the features.
- ``tags``: TF-IDF of user tags ("tag:pixar"). Tags are lower-cased and stripped; tf = how many times
  the tag was applied to the movie; idf = ln(n_rows / df) + 1, where n_rows is the number of movies in
  the matrix and df the number of those movies carrying the tag (the "+ 1" keeps tags that are on every
  movie from vanishing, as scikit-learn's smooth idf does). Tags on fewer than ``min_df`` movies are
  dropped; rows are L2-normalised. ``exclude_tag_pairs`` (raw user ids, raw movie ids) removes the tags
  of held-out (user, movie) pairs, so a held-out interaction cannot leak through its tags.
- ``genome``: the tag genome's relevance scores [n_items, n_genome_tags] ("genome:funny") for the
  releases that have one (ml-20m and later, in full); movies without scores get a zero row.
- ``year``: decade one-hot ("decade:1990s"); movies without a year get a zero row.
- ``all``: genres, tags (when the catalogue has tags that pass ``min_df``), genome (when present) and
  year stacked side by side, each block's non-empty rows scaled to L2 norm 1 so that no block dominates
  by its size (1,128 genome columns against 20 genres) or its scale (ratings, counts).

A comma-separated list of kinds ("genres,year") is stacked the same way as ``all``.

:func:`similarity` scores query rows against every row: "dot", "cosine" (a zero row has similarity 0)
or "euclidean" (the *negative* distance, so that higher is always more similar).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.dataset import Catalog, Interactions, positions

FEATURE_KINDS = ("genres", "weighted-genres", "tags", "genome", "year", "all")
MEASURES = ("dot", "cosine", "euclidean")
_BLOCKS_ALL = ("genres", "tags", "genome", "year")


@dataclass
class ItemFeatures:
    """A sparse item x feature matrix with its feature names and the raw movie id of every row."""

    matrix: sp.csr_matrix  # [n_items, n_features] float32, rows aligned with item_ids
    names: list[str]  # feature names, e.g. "genre:Comedy", "tag:pixar", "genome:funny", "decade:1990s"
    item_ids: np.ndarray  # int64 raw movie ids, one per row
    _sq_norms: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_items(self) -> int:
        return self.matrix.shape[0]

    @property
    def sq_norms(self) -> np.ndarray:
        """Squared L2 norm of every row (float64 [n_items]), computed once."""
        if self._sq_norms is None:
            self._sq_norms = row_sq_norms(self.matrix)
        return self._sq_norms

    def rows(self, movie_ids: np.ndarray | int) -> np.ndarray:
        """Row positions of raw movie ids (-1 where a movie has no row)."""
        return positions(self.item_ids, np.atleast_1d(np.asarray(movie_ids, dtype=np.int64)))

    def similarity(self, query_rows: np.ndarray, measure: str = "dot") -> np.ndarray:
        """float32 [len(query_rows), n_items]; see :func:`similarity`."""
        return similarity(self.matrix, query_rows, measure, sq_norms=self.sq_norms)


# --------------------------------------------------------------------------------------------- helpers


def row_sq_norms(matrix: sp.spmatrix) -> np.ndarray:
    m = sp.csr_matrix(matrix)
    return np.asarray(m.multiply(m).sum(axis=1), dtype=np.float64).ravel()


def l2_normalize_rows(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    norms = np.sqrt(row_sq_norms(m))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    m.data *= np.repeat(scale, np.diff(m.indptr)).astype(np.float32)
    return m


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((values.astype(np.float32), (rows, cols)), shape=shape, dtype=np.float32)
    m.sum_duplicates()
    m.sort_indices()
    return m


def default_item_ids(catalog: Catalog) -> np.ndarray:
    if catalog.item_ids is not None:
        return np.asarray(catalog.item_ids, dtype=np.int64)
    return np.unique(catalog.movies["movieId"].to_numpy(np.int64))


# --------------------------------------------------------------------------------------------- blocks


def genre_block(catalog: Catalog, item_ids: np.ndarray) -> tuple[sp.csr_matrix, list[str]]:
    """Multi-hot genres, CSR float32 [len(item_ids), n_genres] of 0/1, and the names ("genre:Comedy")."""
    rows, cols, names = catalog.genre_incidence(item_ids)
    m = _csr(rows, cols, np.ones(len(rows), np.float32), (len(item_ids), len(names)))
    m.data[:] = 1.0
    return m, [f"genre:{g}" for g in names]


def mean_ratings(train: Interactions) -> np.ndarray:
    """Mean training rating per item (float64 [n_items]); items without one get the global mean."""
    r = train.rating.astype(np.float64)
    counts = np.bincount(train.item, minlength=train.n_items)
    sums = np.bincount(train.item, weights=r, minlength=train.n_items)
    glob = float(r.mean()) if len(r) else 0.0
    return np.divide(sums, counts, out=np.full(train.n_items, glob), where=counts > 0)


def weighted_genre_block(catalog: Catalog, item_ids: np.ndarray, train: Interactions | None
                         ) -> tuple[sp.csr_matrix, list[str]]:
    if train is None:
        raise ValueError("weighted-genres needs training ratings (train=Interactions aligned with item_ids): "
                         "each genre flag is weighted by the movie's mean training rating")
    if train.n_items != len(item_ids):
        raise ValueError(f"train has {train.n_items} items but item_ids has {len(item_ids)} rows; "
                         "their item indices must be aligned")
    m, names = genre_block(catalog, item_ids)
    means = mean_ratings(train).astype(np.float32)
    m.data *= np.repeat(means, np.diff(m.indptr))
    return m, names


def tag_block(catalog: Catalog, item_ids: np.ndarray, exclude_tag_pairs=None, min_df: int = 2
              ) -> tuple[sp.csr_matrix, list[str]]:
    n = len(item_ids)
    tags = catalog.tags
    if tags is None or not len(tags):
        return sp.csr_matrix((n, 0), dtype=np.float32), []
    uid = tags["userId"].to_numpy(np.int64)
    mid = tags["movieId"].to_numpy(np.int64)
    text = tags["tag"].astype("string").str.strip().str.lower()
    keep = text.notna().to_numpy() & (text.str.len().fillna(0).to_numpy() > 0)
    if exclude_tag_pairs is not None:
        ex_u, ex_m = (np.asarray(a, dtype=np.int64) for a in exclude_tag_pairs)
        if len(ex_u):
            held = pd.MultiIndex.from_arrays([ex_u, ex_m])
            keep &= ~pd.MultiIndex.from_arrays([uid, mid]).isin(held)
    rows = positions(item_ids, mid)
    keep &= rows >= 0
    if not keep.any():
        return sp.csr_matrix((n, 0), dtype=np.float32), []
    codes, vocab = pd.factorize(text[keep].to_numpy(dtype=object), sort=True)
    tf = _csr(rows[keep], codes, np.ones(len(codes), np.float32), (n, len(vocab)))  # counts per (movie, tag)
    df = np.bincount(tf.indices, minlength=len(vocab))
    cols = np.flatnonzero(df >= max(int(min_df), 1))
    if not len(cols):
        return sp.csr_matrix((n, 0), dtype=np.float32), []
    tf = tf[:, cols]
    idf = np.log(n / df[cols]) + 1.0
    m = sp.csr_matrix(tf.multiply(idf.astype(np.float32)[None, :]), dtype=np.float32)
    return l2_normalize_rows(m), [f"tag:{t}" for t in np.asarray(vocab)[cols]]


def genome_block(catalog: Catalog, item_ids: np.ndarray) -> tuple[sp.csr_matrix, list[str]]:
    scores = catalog.genome_scores
    if scores is None or not len(scores):
        raise ValueError("this release has no tag genome (genome-scores.csv); use genres, tags or year features")
    tag_ids = np.unique(scores["tagId"].to_numpy(np.int64))
    names_by_id: dict[int, str] = {}
    if catalog.genome_tags is not None and len(catalog.genome_tags):
        gt = catalog.genome_tags
        names_by_id = dict(zip(gt["tagId"].to_numpy(np.int64).tolist(), gt["tag"].astype(str).tolist(), strict=True))
    rows = positions(item_ids, scores["movieId"].to_numpy(np.int64))
    cols = np.searchsorted(tag_ids, scores["tagId"].to_numpy(np.int64))
    rel = scores["relevance"].to_numpy(np.float32)
    keep = rows >= 0
    m = _csr(rows[keep], cols[keep], rel[keep], (len(item_ids), len(tag_ids)))
    m.eliminate_zeros()
    return m, [f"genome:{names_by_id.get(int(t), t)}" for t in tag_ids]


def year_block(catalog: Catalog, item_ids: np.ndarray) -> tuple[sp.csr_matrix, list[str]]:
    movies = catalog.movies[["movieId", "year"]].drop_duplicates("movieId")
    year = pd.to_numeric(movies["year"], errors="coerce").to_numpy(np.float64)
    rows = positions(item_ids, movies["movieId"].to_numpy(np.int64))
    keep = (rows >= 0) & np.isfinite(year)
    decade = (np.floor(year[keep] / 10) * 10).astype(np.int64)
    decades, cols = np.unique(decade, return_inverse=True)
    m = _csr(rows[keep], cols.ravel(), np.ones(len(cols), np.float32), (len(item_ids), len(decades)))
    return m, [f"decade:{d}s" for d in decades]


# --------------------------------------------------------------------------------------------- public


def _parse_kinds(kinds: str) -> list[str]:
    parts = [k.strip() for k in str(kinds).split(",") if k.strip()]
    if not parts:
        raise ValueError(f"no feature kind given (expected one of {', '.join(FEATURE_KINDS)})")
    for k in parts:
        if k not in FEATURE_KINDS:
            raise ValueError(f"unknown features {k!r} (expected one of {', '.join(FEATURE_KINDS)})")
    if len(parts) > 1 and "all" in parts:
        raise ValueError("'all' cannot be combined with other feature kinds")
    return parts


def build_item_features(
    catalog: Catalog,
    item_ids: np.ndarray | None = None,
    kinds: str = "genres",
    train: Interactions | None = None,
    exclude_tag_pairs: tuple[np.ndarray, np.ndarray] | None = None,
    min_df: int = 2,
) -> ItemFeatures:
    """Item x feature matrix for ``item_ids`` (default: the catalogue's dataset items, else every movie).

    kinds: one of :data:`FEATURE_KINDS` or a comma-separated list of them (stacked like "all").
    train: training interactions whose item indices are the rows (needed by "weighted-genres").
    exclude_tag_pairs: (raw user ids, raw movie ids) whose tags are ignored (held-out interactions).
    min_df: a tag is kept only if it is on at least this many movies.
    Raises ValueError for an unknown kind, weighted-genres without ``train``, genome without a genome.
    """
    ids = default_item_ids(catalog) if item_ids is None else np.asarray(item_ids, dtype=np.int64).ravel()
    parts = _parse_kinds(kinds)
    if parts == ["all"]:
        blocks, strict = list(_BLOCKS_ALL), False
    else:
        blocks, strict = parts, len(parts) == 1
    mats, names = [], []
    for kind in blocks:
        if kind == "genres":
            m, nm = genre_block(catalog, ids)
        elif kind == "weighted-genres":
            m, nm = weighted_genre_block(catalog, ids, train)
        elif kind == "tags":
            m, nm = tag_block(catalog, ids, exclude_tag_pairs, min_df)
        elif kind == "genome":
            if not strict and (catalog.genome_scores is None or not len(catalog.genome_scores)):
                continue  # "all" uses the genome only where the release has one
            m, nm = genome_block(catalog, ids)
        else:
            m, nm = year_block(catalog, ids)
        if not nm and not strict:
            continue
        if not nm and kind == "tags":
            raise ValueError(f"no user tags to build features from (none in this catalogue on >= {min_df} movies)")
        mats.append(m if strict else l2_normalize_rows(m))
        names += nm
    if not mats:
        matrix = sp.csr_matrix((len(ids), 0), dtype=np.float32)
    elif len(mats) == 1:
        matrix = sp.csr_matrix(mats[0], dtype=np.float32)
    else:
        matrix = sp.hstack(mats, format="csr", dtype=np.float32)
    matrix.sort_indices()
    return ItemFeatures(matrix, names, ids)


def similarity(matrix: sp.spmatrix, query_rows: np.ndarray, measure: str = "dot",
               sq_norms: np.ndarray | None = None) -> np.ndarray:
    """Similarity of rows ``query_rows`` of ``matrix`` to every row: float32 [len(query_rows), n_items].

    dot: x_q . x_j; cosine: x_q . x_j / (|x_q| |x_j|), 0 where either row is all zero; euclidean:
    -|x_q - x_j| (negative, so higher is more similar for every measure). ``sq_norms`` (squared row
    norms, e.g. :attr:`ItemFeatures.sq_norms`) saves recomputing them for cosine and euclidean.
    """
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r} (expected one of {', '.join(MEASURES)})")
    m = matrix if sp.isspmatrix_csr(matrix) else sp.csr_matrix(matrix)
    q_idx = np.atleast_1d(np.asarray(query_rows, dtype=np.int64))
    q = m[q_idx]
    dots = np.asarray((q @ m.T).toarray(), dtype=np.float64)  # [n_query, n_items]
    if measure == "dot":
        return dots.astype(np.float32)
    norms2 = row_sq_norms(m) if sq_norms is None else np.asarray(sq_norms, dtype=np.float64)
    qn2 = norms2[q_idx]
    if measure == "cosine":
        denom = np.sqrt(qn2)[:, None] * np.sqrt(norms2)[None, :]
        return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0).astype(np.float32)
    d2 = qn2[:, None] + norms2[None, :] - 2.0 * dots
    d2[np.arange(len(q_idx)), q_idx] = 0.0  # exact zero distance to itself despite rounding
    return (-np.sqrt(np.maximum(d2, 0.0))).astype(np.float32)


__all__ = [
    "FEATURE_KINDS", "MEASURES", "ItemFeatures", "build_item_features", "l2_normalize_rows", "mean_ratings",
    "similarity",
]
