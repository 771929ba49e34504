"""In-memory containers: interactions as index arrays, id maps, the movie catalogue.

Everything downstream (splits, models, evaluation) works on dense 0-based indices; raw MovieLens ids
only appear at the edges (loading, the CLI, the HTTP service) through :class:`IdMap`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.errors import MovieRecError

NO_GENRE = "(no genres listed)"
"""MovieLens's genre value for a movie without genres; never a genre of its own."""


class UnknownIdError(MovieRecError, KeyError):
    """A raw user or movie id that the data set does not contain (a user error: the CLI prints one line)."""

    def __init__(self, kind: str, value: object) -> None:
        super().__init__(f"unknown {kind} id: {value}")
        self.kind = kind
        self.value = value

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class IdMap:
    """Raw id <-> dense index. ``ids`` is sorted ascending, so index = position in ``ids``.

    ids: int64 [n]; labels: object [n] each id's original (string) id for data imported with string ids
    (:mod:`movierec.data.own`), None otherwise (the id is its own label).
    """

    ids: np.ndarray
    kind: str = "id"
    labels: np.ndarray | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_raw(cls, raw: np.ndarray, kind: str = "id") -> tuple[IdMap, np.ndarray]:
        """Build the map of the distinct values in ``raw`` and return it with ``raw`` as indices (int32)."""
        raw = np.asarray(raw, dtype=np.int64)
        if len(raw) and raw.min() >= 0 and raw.max() < max(4 * len(raw), 1 << 20):
            # Dense id range (every MovieLens release): a lookup table, O(n + max id), no sort.
            present = np.zeros(int(raw.max()) + 1, dtype=bool)
            present[raw] = True
            ids = np.flatnonzero(present)
            lookup = np.cumsum(present, dtype=np.int64) - 1
            return cls(ids.astype(np.int64), kind), lookup[raw].astype(np.int32)
        ids, inverse = np.unique(raw, return_inverse=True)
        return cls(ids, kind), inverse.astype(np.int32).ravel()

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, raw: np.ndarray | int) -> np.ndarray:
        """Indices (int32) of raw ids; raises :class:`UnknownIdError` naming the first unknown id (also for a
        value that is no 64-bit integer, which no id can be)."""
        raw_arr = _as_ids(raw, self.kind)
        pos = np.searchsorted(self.ids, raw_arr)
        pos_clipped = np.minimum(pos, len(self.ids) - 1)
        ok = (pos < len(self.ids)) & (self.ids[pos_clipped] == raw_arr) if len(self.ids) else np.zeros(
            raw_arr.shape, bool
        )
        if not ok.all():
            raise UnknownIdError(self.kind, int(raw_arr[~ok][0]))
        return pos.astype(np.int32)

    def contains(self, raw: np.ndarray | int) -> np.ndarray:
        try:
            raw_arr = np.atleast_1d(np.asarray(raw, dtype=np.int64))
        except OverflowError:  # a value beyond int64 is no id: compare value by value
            return np.array([isinstance(r, (int, np.integer)) and -(1 << 63) <= int(r) < (1 << 63)
                             and bool(self.contains(int(r))[0]) for r in np.atleast_1d(np.asarray(raw, dtype=object))])
        if not len(self.ids):
            return np.zeros(raw_arr.shape, bool)
        pos = np.minimum(np.searchsorted(self.ids, raw_arr), len(self.ids) - 1)
        return self.ids[pos] == raw_arr

    def raw(self, index: np.ndarray | int) -> np.ndarray:
        return self.ids[np.asarray(index)]

    def label(self, index: int) -> str:
        """The original id of index ``index``: its label, or the raw id as text."""
        return str(self.labels[index]) if self.labels is not None else str(int(self.ids[index]))

    def label_array(self) -> np.ndarray:
        """object [n] every index's label (the raw ids as text when there are no labels)."""
        return self.labels if self.labels is not None else self.ids.astype(str).astype(object)

    def index_of(self, label_or_id: str | int) -> int:
        """Index of an original id: matched against the labels when there are any, else read as an integer raw
        id; :class:`UnknownIdError` when there is no such id."""
        if self.labels is not None:
            hit = int(self.indices_of_labels(np.array([str(label_or_id).strip()]))[0])
            if hit < 0:
                raise UnknownIdError(self.kind, str(label_or_id).strip())
            return hit
        if isinstance(label_or_id, str):
            text = label_or_id.strip()
            if not re.fullmatch(r"[-+]?\d+", text):
                raise UnknownIdError(self.kind, text)
            label_or_id = int(text)
        return int(self.index(label_or_id)[0])

    def indices_of_labels(self, labels: np.ndarray) -> np.ndarray:
        """int64 [n] index of each label, -1 where unknown (labels, or raw ids as text when there are none)."""
        known = pd.Index(self.label_array().astype(str))
        return known.get_indexer(pd.Index(np.asarray(labels).astype(str))).astype(np.int64)

    def with_labels(self, labels: np.ndarray | None) -> IdMap:
        return IdMap(self.ids, self.kind, None if labels is None else np.asarray(labels, dtype=object))


def _as_ids(raw: np.ndarray | int, kind: str) -> np.ndarray:
    """``raw`` as int64 [n]; a value outside the int64 range raises :class:`UnknownIdError` naming it."""
    try:
        return np.atleast_1d(np.asarray(raw, dtype=np.int64))
    except OverflowError:
        for r in np.atleast_1d(np.asarray(raw, dtype=object)).ravel().tolist():
            try:
                np.int64(r)
            except OverflowError:
                raise UnknownIdError(kind, r) from None
        raise


def positions(ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Position of each ``query`` value in ``ids`` (any order, distinct values), -1 where absent: int64 [len(query)]."""
    ids = np.asarray(ids, dtype=np.int64)
    if not len(ids):
        return np.full(len(query), -1, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, query), len(ids) - 1)
    return np.where(sorted_ids[pos] == query, order[pos], -1).astype(np.int64)


@dataclass
class Interactions:
    """A set of (user, item) interactions over fixed index spaces.

    user, item: int32 [n] dense indices; rating: float32 [n] (1.0 for implicit data);
    timestamp: int64 [n] seconds since the epoch (0 where unknown).
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    n_users: int
    n_items: int

    def __post_init__(self) -> None:
        self.user = np.asarray(self.user, dtype=np.int32)
        self.item = np.asarray(self.item, dtype=np.int32)
        self.rating = np.asarray(self.rating, dtype=np.float32)
        self.timestamp = np.asarray(self.timestamp, dtype=np.int64)
        n = len(self.user)
        if not (len(self.item) == len(self.rating) == len(self.timestamp) == n):
            raise ValueError("user, item, rating and timestamp arrays must have the same length")

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask_or_index: np.ndarray) -> Interactions:
        return Interactions(
            self.user[mask_or_index],
            self.item[mask_or_index],
            self.rating[mask_or_index],
            self.timestamp[mask_or_index],
            self.n_users,
            self.n_items,
        )

    def matrix(self, binary: bool = True, dtype: type = np.float32) -> sp.csr_matrix:
        """User x item CSR matrix [n_users, n_items]; duplicates collapse (binary) or the last one wins."""
        values = np.ones(len(self), dtype=dtype) if binary else self.rating.astype(dtype)
        m = sp.csr_matrix((values, (self.user, self.item)), shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        if binary:
            m.data[:] = 1
        m.sort_indices()
        return m

    def user_counts(self) -> np.ndarray:
        return np.bincount(self.user, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"user": self.user, "item": self.item, "rating": self.rating, "timestamp": self.timestamp}
        )


@dataclass
class Catalog:
    """The movies of a release, keyed by raw ``movieId``.

    movies: one row per movie: movieId (int64), title (str, year stripped), year (float, NaN if none),
        genres (list[str]); optional imdbId, tmdbId.
    tags: userId, movieId, tag, timestamp (may be empty).
    users: userId plus demographics (gender, age, occupation, zip) where the release has them.
    genome_scores: movieId, tagId, relevance; genome_tags: tagId, tag (where the release has them).
    """

    movies: pd.DataFrame
    tags: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["userId", "movieId", "tag"]))
    users: pd.DataFrame | None = None
    genome_scores: pd.DataFrame | None = None
    genome_tags: pd.DataFrame | None = None
    #: raw movie ids in a dataset's item-index order (set by Dataset), so models that only see item
    #: indices can ask for aligned content features with ``item_genres()``
    item_ids: np.ndarray | None = None
    user_ids: np.ndarray | None = None  # raw user ids in the dataset's user-index order

    def item_genres(self) -> tuple[np.ndarray, list[str]]:
        """Genre multi-hot [n_items, n_genres] aligned with the dataset's item indices."""
        if self.item_ids is None:
            raise ValueError("this catalogue is not attached to a dataset's item index")
        return self.genre_matrix(self.item_ids)

    @property
    def genre_names(self) -> list[str]:
        names = sorted({g for gs in self.movies["genres"] for g in gs})
        return [g for g in names if g != NO_GENRE]

    def genre_incidence(self, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The ones of the multi-hot genre matrix [len(movie_ids), n_genres] as (row, column) pairs.

        Returns rows (int64 positions in ``movie_ids``), columns (int64 genre codes) and the genre names
        (sorted; "(no genres listed)" and empty genres dropped). A pair may repeat where a movie lists a
        genre twice; movies missing from the catalogue have no pairs.
        """
        movies = self.movies[["movieId", "genres"]].drop_duplicates("movieId").explode("genres")
        movies = movies[movies["genres"].notna() & (movies["genres"] != NO_GENRE) & (movies["genres"] != "")]
        codes, names = pd.factorize(movies["genres"], sort=True)
        rows = positions(movie_ids, movies["movieId"].to_numpy(np.int64))
        keep = rows >= 0
        return rows[keep], codes[keep], [str(g) for g in names]

    def genre_matrix(self, movie_ids: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
        """Multi-hot genres [len(movie_ids), n_genres] (float32) in ``movie_ids`` order (all movies, sorted by
        id, if None). Movies missing from the catalogue get an all-zero row. Dense view of
        :func:`movierec.data.features.genre_block`."""
        ids = np.unique(self.movies["movieId"].to_numpy(np.int64)) if movie_ids is None else movie_ids
        ids = np.asarray(ids, dtype=np.int64)
        rows, cols, names = self.genre_incidence(ids)
        m = np.zeros((len(ids), len(names)), dtype=np.float32)
        m[rows, cols] = 1.0
        return m, names

    def titles(self, movie_ids: np.ndarray) -> list[str]:
        """Display titles ("Title (Year)") for raw movie ids; unknown ids give "movie <id>"."""
        m = self.movies.set_index("movieId")
        out = []
        for mid in np.asarray(movie_ids, dtype=np.int64).tolist():
            if mid in m.index:
                row = m.loc[mid]
                year = row["year"]
                out.append(f"{row['title']} ({int(year)})" if pd.notna(year) else str(row["title"]))
            else:
                out.append(f"movie {mid}")
        return out


@dataclass
class Dataset:
    """A loaded release: all interactions, id maps, catalogue, and a predefined split if it came with one.

    ``predefined_split`` is set for folders in the NCF repository's format (train/test/negative files).
    """

    name: str
    interactions: Interactions
    users: IdMap
    items: IdMap
    catalog: Catalog | None = None
    predefined_split: object | None = None  # movierec.data.splits.Split
    source: str = ""
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.catalog is not None and self.catalog.item_ids is None:
            self.catalog.item_ids = self.items.ids
            self.catalog.user_ids = self.users.ids

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def user_labels(self) -> np.ndarray | None:
        """object [n_users] each user's original id (own data imported with string ids), else None."""
        return self.users.labels

    @property
    def item_labels(self) -> np.ndarray | None:
        """object [n_items] each item's original id (own data imported with string ids), else None."""
        return self.items.labels

    @property
    def n_items(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        """A hex digest (blake2b, 32 hex characters) of everything results computed on this dataset depend on.

        It covers the interaction arrays (user, item, rating, timestamp and the index-space sizes), both id
        maps, the catalogue's content (movies, tags, users/demographics, genome scores and tags, each where
        present; the paths it was read from, the name and the cache do not count) and the predefined split
        if the dataset has one. Two loads of the same files give the same digest in any process; a change of
        one rating, timestamp or tag gives another, even when every count stays the same. Raw array bytes
        are hashed (no Python loop over rows): about a second for 20M ratings. Computed once and cached on
        the instance, so a dataset must not be changed in place after its first call.
        """
        if self._fingerprint is None:
            h = hashlib.blake2b(digest_size=16)
            _hash_text(h, "movierec.dataset.v1")
            inter = self.interactions
            _hash_text(h, f"interactions {len(inter)} {inter.n_users} {inter.n_items}")
            for name in ("user", "item", "rating", "timestamp"):
                _hash_array(h, name, getattr(inter, name))
            _hash_array(h, "user_ids", self.users.ids)
            _hash_array(h, "item_ids", self.items.ids)
            cat = self.catalog
            for name in ("movies", "tags", "users", "genome_scores", "genome_tags"):
                _hash_frame(h, name, None if cat is None else getattr(cat, name))
            _hash_split(h, self.predefined_split)
            for name, labels in (("user_labels", self.users.labels), ("item_labels", self.items.labels)):
                if labels is not None:  # only own data with string ids: other digests stay as they were
                    _hash_frame(h, name, pd.DataFrame({"label": pd.Series(labels, dtype=object).astype(str)}))
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def genre_features(self) -> np.ndarray | None:
        """Genre multi-hot float32 [n_items, n_genres] in item-index order (intra-list diversity), or None when
        the data has no catalogue or no genres."""
        if self.catalog is None:
            return None
        feats, names = self.catalog.genre_matrix(self.items.ids)
        return feats if names else None

    def rating_scale(self) -> list[float]:
        """[lowest, highest] rating of the data (what a new person may give, when served)."""
        r = self.interactions.rating
        return [float(r.min()), float(r.max())] if len(r) else [1.0, 1.0]

    def info(self) -> dict:
        n = len(self.interactions)
        density = n / max(self.n_users * self.n_items, 1)
        return {
            "name": self.name,
            "source": self.source,
            "ratings": int(n),
            "users": int(self.n_users),
            "items": int(self.n_items),
            "density": float(density),
            "movies_in_catalog": len(self.catalog.movies) if self.catalog is not None else 0,
            "tags": len(self.catalog.tags) if self.catalog is not None else 0,
            "has_demographics": bool(self.catalog is not None and self.catalog.users is not None),
            "has_genome": bool(self.catalog is not None and self.catalog.genome_scores is not None),
            "predefined_split": self.predefined_split is not None,
        }


def _hash_text(h: hashlib.blake2b, text: str) -> None:
    data = text.encode()
    h.update(len(data).to_bytes(8, "little") + data)  # length-prefixed: no two sequences run together


def _hash_array(h: hashlib.blake2b, name: str, a: np.ndarray | None) -> None:
    """The array's dtype, shape and raw bytes (little-endian, C order) under ``name``; None hashes as absent."""
    if a is None:
        _hash_text(h, f"{name}: none")
        return
    a = np.asarray(a)
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype)
    _hash_text(h, f"{name}: {a.dtype.str} {a.shape}")
    h.update(a.view(np.uint8).reshape(-1) if a.size else b"")


def _column_values(s: pd.Series) -> np.ndarray:
    """A column as an array that depends only on its values, not on how it was read (object or string dtype,
    numpy or nullable integers): integers as int64 (float64 with NaN where some are missing), other numbers
    as float64, everything else as the uint64 hashes of ``pd.util.hash_pandas_object`` with list values
    (genres) joined first."""
    if pd.api.types.is_bool_dtype(s.dtype) and not s.hasnans:
        return s.to_numpy(dtype=np.int64)
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan) if s.hasnans else s.to_numpy(dtype=np.int64)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_complex_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    s = s.astype(object)
    try:
        return pd.util.hash_pandas_object(s, index=False).to_numpy()
    except TypeError:  # unhashable values: lists (a movie's genres) or arrays
        joined = s.map(lambda v: "\x1f".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else v)
        return pd.util.hash_pandas_object(joined, index=False).to_numpy()


def _hash_frame(h: hashlib.blake2b, name: str, frame: pd.DataFrame | None) -> None:
    """A table's column names, row count and values (in row order; the index does not count)."""
    if frame is None:
        _hash_text(h, f"{name}: none")
        return
    _hash_text(h, f"{name}: {len(frame)} rows, columns {[str(c) for c in frame.columns]}")
    for col in frame.columns:
        _hash_array(h, f"{name}.{col}", _column_values(frame[col]))


def _hash_split(h: hashlib.blake2b, split: object | None) -> None:
    """A predefined split (movierec.data.splits.Split, read by attribute: splits imports this module)."""
    if split is None:
        _hash_text(h, "split: none")
        return
    _hash_text(h, f"split: {split.protocol} {split.seed} {sorted(split.meta.items())!r}")  # type: ignore[attr-defined]
    train = split.train  # type: ignore[attr-defined]
    for col in ("user", "item", "rating", "timestamp"):
        _hash_array(h, f"split.train.{col}", getattr(train, col))
    for part_name in ("valid", "test"):
        part = getattr(split, part_name)
        if part is None:
            _hash_text(h, f"split.{part_name}: none")
            continue
        for col in ("user", "item", "negatives", "timestamp"):
            _hash_array(h, f"split.{part_name}.{col}", getattr(part, col))
        fold_in = part.fold_in
        for col in ("user", "item", "rating", "timestamp"):
            _hash_array(h, f"split.{part_name}.fold_in.{col}", None if fold_in is None else getattr(fold_in, col))
    _hash_array(h, "split.candidates", split.candidates)  # type: ignore[attr-defined]


def build_dataset(
    name: str,
    ratings: pd.DataFrame,
    catalog: Catalog | None,
    source: str = "",
) -> Dataset:
    """Index a ratings table (userId, movieId, rating, timestamp) into a :class:`Dataset`."""
    users, u = IdMap.from_raw(ratings["userId"].to_numpy(), "user")
    items, i = IdMap.from_raw(ratings["movieId"].to_numpy(), "movie")
    ts = ratings["timestamp"].to_numpy(np.int64) if "timestamp" in ratings else np.zeros(len(ratings), np.int64)
    r = ratings["rating"].to_numpy(np.float32) if "rating" in ratings else np.ones(len(ratings), np.float32)
    inter = Interactions(u, i, r, ts, len(users), len(items))
    return Dataset(name, inter, users, items, catalog, None, source)
