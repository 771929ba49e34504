"""Movies like this one: item-to-item content similarity, and finding a movie by its title.

- :func:`resolve_title` turns what a person types ("toy story", "Toy Story (1995)", "The City of Lost
  Children", "1") into a movieId, or raises a one-line :class:`~movierec.errors.MovieRecError` that lists
  the candidates (ambiguous title) or the closest titles (unknown title).
- :func:`similar_movies` ranks every movie of the catalogue by its similarity to the query movie, over
  the features of :mod:`movierec.data.features` ("weighted-genres" + "dot" reproduces the seed study).
- :class:`SimilarityIndex` builds the features once and answers many queries (the CLI builds one per call;
  a service keeps one).
- :func:`load_source` opens what ``movierec similar --data`` names: a dataset (ratings + movies), a
  catalogue-only folder (movies.csv without ratings, e.g. the ml-20m catalogue) or a trained run folder
  (a model bundle, whose ids.parquet carries each movie's title and genres but no ratings).

Which movies take part: every movie of the catalogue (also those nobody rated). With "weighted-genres" a
movie's weight is its mean rating over all of the dataset's ratings (or over ``train`` when given; there
is no evaluation here, so using every rating is fine); unrated movies get the global mean. A model bundle
keeps no ratings, so "weighted-genres" is refused there; the CLI's default features are "weighted-genres"
where ratings exist and "genres" otherwise, and it says which it used.

Ranking: the query movie itself is excluded; with "dot" and "cosine" only movies with a positive score
(sharing at least one feature) are returned, so a list can be shorter than k; ties are broken by movieId.
Where ratings are known (a Dataset), only movies with at least ``min_ratings`` ratings (default 5) are
returned: a mean over one or two ratings is noise, and with "weighted-genres" + "dot" a single 5-star
rating would otherwise outrank Toy Story 2 for Toy Story (with the floor, ml-latest-small gives the seed
study's list: Toy Story 3, Monsters, Inc., The Lego Movie, Shrek, Toy Story 2, ...). ``min_ratings=0``
returns every catalogue movie. Catalogues and bundles have no rating counts, so no floor applies there.
A query movie whose feature row is empty (no genres listed, no tags, ...) is an error rather than an
arbitrary list.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.dataset import Catalog, Dataset, Interactions
from movierec.data.features import FEATURE_KINDS, MEASURES, ItemFeatures, build_item_features
from movierec.errors import MovieRecError

SIMILAR_FEATURES = ("genres", "weighted-genres", "tags", "genome", "year", "all")
_ARTICLES = ("the", "a", "an", "les", "la", "le", "l'", "il", "el", "die", "das", "der", "den", "det", "lo",
             "los", "las", "gli", "i", "un", "une", "uno", "una", "ein", "eine", "o", "os", "as")
_ART = "|".join(re.escape(a) for a in sorted(_ARTICLES, key=len, reverse=True))
_TRAILING_ARTICLE = re.compile(rf"^(?P<rest>.+?),\s*(?P<art>{_ART})$", re.IGNORECASE)
_LEADING_ARTICLE = re.compile(rf"^(?:{_ART})(?:\s+|(?<='))", re.IGNORECASE)
_MAIN_ALT = r"^(?P<main>.*?)\s*\((?P<alt>[^()]*)\)$"
_QUERY_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")
_MAX_CANDIDATES = 8


# --------------------------------------------------------------------------------------------- titles


def fold(s: pd.Series) -> pd.Series:
    """Lower-case, accents removed, whitespace collapsed."""
    s = s.astype(str).str.normalize("NFKD").str.encode("ascii", "ignore").str.decode("ascii")
    return s.str.lower().str.replace(r"\s+", " ", regex=True).str.strip()


def _move_article(s: pd.Series) -> pd.Series:
    """ "city of lost children, the" -> "the city of lost children"; "avventura, l'" -> "l'avventura"."""
    m = s.str.extract(_TRAILING_ARTICLE)
    sep = np.where(m["art"].fillna("").str.endswith("'"), "", " ")
    moved = m["art"] + sep + m["rest"]
    return moved.where(m["art"].notna(), s)


def _drop_article(s: pd.Series) -> pd.Series:
    return s.str.replace(_LEADING_ARTICLE, "", n=1, regex=True).str.strip()


def fold_one(text: str) -> str:
    return str(fold(pd.Series([text])).iloc[0])


def display_titles(movies: pd.DataFrame) -> pd.Series:
    """"Title (Year)" (just the title where the year is unknown)."""
    year = pd.to_numeric(movies["year"], errors="coerce")
    with_year = movies["title"].astype(str) + " (" + year.fillna(0).astype(np.int64).astype(str) + ")"
    return with_year.where(year.notna(), movies["title"].astype(str))


def catalog_movies(movies: pd.DataFrame) -> pd.DataFrame:
    """A catalogue-style movies frame (movieId, title without year, year, genres list) from either a
    :class:`Catalog`'s movies or a model bundle's (raw_id, "Title (Year)", "A|B")."""
    if "movieId" in movies.columns:
        return movies
    if "raw_id" not in movies.columns:
        raise MovieRecError("movies table has neither a movieId nor a raw_id column")
    import pyarrow as pa

    from movierec.data.parse import split_title_year

    title, year = split_title_year(pa.array(movies["title"].fillna("").astype(str).tolist(), pa.string()))
    genres = movies["genres"].fillna("").astype(str).str.split("|")
    return pd.DataFrame({
        "movieId": movies["raw_id"].to_numpy(np.int64), "title": title.to_pylist(),
        "year": year.to_numpy(zero_copy_only=False).astype(np.float64),
        "genres": [[g for g in gs if g] for gs in genres],
    })


@dataclass
class TitleIndex:
    """Normalised lookup keys for every movie's title (built once, vectorised over the catalogue).

    Each movie is findable by its full title, its main title without a trailing parenthesised alternative
    ("Cité des enfants perdus, La"), that alternative, each with a trailing article moved to the front,
    all lower-case and without accents (tier 1), and by the same keys without a leading article (tier 2,
    used only when tier 1 finds nothing).
    """

    movies: pd.DataFrame  # movieId, title, year, display
    keys: pd.DataFrame  # key, tier, pos (row of movies)
    _main: list[str] = field(default_factory=list, repr=False)

    @classmethod
    def build(cls, movies: pd.DataFrame) -> TitleIndex:
        mv = catalog_movies(movies)
        mv = mv[["movieId", "title", "year"]].drop_duplicates("movieId").reset_index(drop=True)
        mv["display"] = display_titles(mv)
        full = fold(mv["title"])
        parts = full.str.extract(_MAIN_ALT)
        main = parts["main"].where(parts["main"].notna() & (parts["main"] != ""), full)
        alt = parts["alt"].str.replace(r"^a\.k\.a\.\s*", "", regex=True)
        pos = np.arange(len(mv))
        variants = [full, _move_article(full), main, _move_article(main), alt, _move_article(alt)]
        tier1 = pd.DataFrame({"key": pd.concat(variants, ignore_index=True),
                              "pos": np.tile(pos, len(variants))})
        tier1 = tier1[tier1["key"].notna() & (tier1["key"] != "")].drop_duplicates()
        tier2 = pd.DataFrame({"key": _drop_article(tier1["key"]), "pos": tier1["pos"].to_numpy()})
        tier2 = tier2[tier2["key"] != ""].drop_duplicates()
        keys = pd.concat([tier1.assign(tier=1), tier2.assign(tier=2)], ignore_index=True)
        return cls(mv, keys, _move_article(main).tolist())

    def _label(self, pos: np.ndarray) -> list[str]:
        rows = self.movies.iloc[pos]
        return [f"{d} [{m}]" for d, m in zip(rows["display"], rows["movieId"], strict=True)]

    def resolve(self, query: str) -> int:
        text = str(query).strip()
        if not text:
            raise MovieRecError("empty movie title")
        if re.fullmatch(r"\d+", text):
            mid = int(text)
            if not (self.movies["movieId"] == mid).any():
                raise MovieRecError(f"unknown movie id {mid}")
            return mid
        m = _QUERY_YEAR.match(text)
        title, year = (m["title"], float(m["year"])) if m and m["title"].strip() else (text, None)
        q = fold_one(title)
        q_forms = {q, str(_move_article(pd.Series([q])).iloc[0])}
        q_forms |= {str(_drop_article(pd.Series(list(q_forms))).iloc[i]) for i in range(len(q_forms))}
        hits = self.keys[self.keys["key"].isin(q_forms)]
        if len(hits):
            hits = hits[hits["tier"] == hits["tier"].min()]
        pos = np.unique(hits["pos"].to_numpy(np.int64))
        title_pos = pos
        if year is not None:
            pos = pos[self.movies["year"].to_numpy(np.float64)[pos] == year]
        if len(pos) == 1:
            return int(self.movies["movieId"].iloc[pos[0]])
        if len(pos) > 1:
            order = np.lexsort((self.movies["movieId"].to_numpy()[pos], self.movies["year"].to_numpy()[pos]))
            pos = pos[order]
            shown = "; ".join(self._label(pos[:_MAX_CANDIDATES]))
            more = f" and {len(pos) - _MAX_CANDIDATES} more" if len(pos) > _MAX_CANDIDATES else ""
            example = str(self.movies["display"].iloc[pos[0]])
            hint = "use the movie id" if year is not None else f"add the year (e.g. {example!r}) or use the movie id"
            raise MovieRecError(f"{text!r} matches {len(pos)} movies: {shown}{more}; {hint}")
        if len(title_pos):  # the title exists, but not from that year
            shown = "; ".join(self._label(title_pos[:_MAX_CANDIDATES]))
            raise MovieRecError(f"no movie titled {title.strip()!r} from {int(year)}; that title: {shown}")
        raise MovieRecError(f"no movie titled {text!r}{self._suggest(q)}")

    def _suggest(self, q: str) -> str:
        tier1 = self.keys[self.keys["tier"] == 1]
        keys = tier1["key"].drop_duplicates().tolist()
        close = difflib.get_close_matches(q, keys, n=5, cutoff=0.6)
        if close:
            first = tier1.drop_duplicates("key").set_index("key")["pos"]
            pos = list(dict.fromkeys(int(first[c]) for c in close))
        else:
            contains = tier1[tier1["key"].str.contains(q, regex=False)]
            pos = list(dict.fromkeys(contains["pos"].astype(int).tolist()))[:5]
        if not pos:
            return " (no similar titles either); search by a word of the title or use the movie id"
        return "; closest titles: " + "; ".join(self._label(np.asarray(pos, dtype=np.int64)))


def resolve_title(movies: pd.DataFrame, query: str) -> int:
    """The movieId a person means by ``query``: a movieId ("1"), or a title matched case-insensitively,
    with or without the year ("toy story", "Toy Story (1995)"), with MovieLens' trailing articles moved
    ("The City of Lost Children" finds "City of Lost Children, The (...)").

    Raises MovieRecError (one line) for an unknown id, an ambiguous title (up to 8 candidates as
    "Title (Year) [id]") or an unknown title (up to 5 closest titles). A title that is a number ("300")
    is read as a movieId; add its year ("300 (2007)") to look it up by title.
    """
    return TitleIndex.build(movies).resolve(query)


# --------------------------------------------------------------------------------------------- sources


def catalog_from_bundle(bundle) -> Catalog:
    """A catalogue (titles, years, genres) from a model bundle's movie table; no tags, no genome."""
    return Catalog(movies=catalog_movies(bundle.movies))


def load_source(data: str | os.PathLike):
    """What ``--data`` names: a model bundle (folder with config.json) -> Bundle; a dataset with ratings
    -> Dataset; a release, imported name or folder with movies but no ratings -> Catalog."""
    from movierec.data.load import load_catalog, load_dataset
    from movierec.data.releases import LAYOUTS, RELEASES, detect_layout, find_release_dir

    p = Path(data).expanduser()
    if p.is_dir() and (p / "config.json").is_file():
        from movierec.artifacts import load_bundle

        return load_bundle(p)
    folder: Path | None = None
    if p.is_dir():
        folder = p
    elif str(data) in RELEASES or find_release_dir(str(data)) is not None:
        if find_release_dir(str(data), need="ratings") is None:
            folder = find_release_dir(str(data), need="movies")
        else:
            folder = find_release_dir(str(data), need="ratings")
    if folder is not None:
        layout = detect_layout(folder)
        specs = LAYOUTS.get(layout, {})
        if layout != "ncf" and not (folder / specs["ratings"].filename).is_file():
            return load_catalog(data, fetch_missing=False)
    return load_dataset(data, progress=True)


def _has_ratings(source) -> bool:
    return isinstance(source, Dataset)


def default_features(source) -> tuple[str, str]:
    """(features, note): weighted-genres where ratings exist, else genres with a note saying why."""
    from movierec.artifacts import Bundle

    if _has_ratings(source):
        return "weighted-genres", ""
    if isinstance(source, Bundle):
        return "genres", "weighted-genres needs ratings, which a model bundle does not keep"
    return "genres", "weighted-genres needs ratings, which this data has not"


# --------------------------------------------------------------------------------------------- index


def _check(measure: str, features: str) -> None:
    if measure not in MEASURES:
        raise MovieRecError(f"unknown measure {measure!r} (expected one of {', '.join(MEASURES)})")
    if features not in FEATURE_KINDS:
        raise MovieRecError(f"unknown features {features!r} (expected one of {', '.join(SIMILAR_FEATURES)})")


@dataclass
class SimilarityIndex:
    """Feature rows for every catalogue movie plus what is needed to show them; answers queries."""

    features: ItemFeatures
    feature_kind: str
    display: np.ndarray  # object [n_items] "Title (Year)"
    genres: np.ndarray  # object [n_items] "A|B"
    titles: TitleIndex | None = None
    movies: pd.DataFrame | None = field(default=None, repr=False)
    counts: np.ndarray | None = None  # int64 [n_items] ratings per movie, where ratings are known

    @classmethod
    def build(cls, source, features: str = "weighted-genres", train: Interactions | None = None
              ) -> SimilarityIndex:
        """``source``: a Dataset, a Catalog or a model Bundle. ``train`` (optional, weighted-genres only):
        interactions in the dataset's item-index order whose ratings weight the genres (default: all of
        the dataset's ratings)."""
        _check("dot", features)
        from movierec.artifacts import Bundle

        ratings: Interactions | None = None
        item_index_ids: np.ndarray | None = None  # raw ids of the rating item indices
        if isinstance(source, Bundle):
            catalog = catalog_from_bundle(source)
            if features == "weighted-genres" and train is None:
                raise MovieRecError("weighted-genres needs ratings, which a model bundle does not keep: use "
                                    "--features genres, or --data with the dataset the model was trained on")
            item_index_ids = source.items.ids
        elif isinstance(source, Dataset):
            if source.catalog is None:
                raise MovieRecError(f"{source.name} has no movie catalogue (movies file): no titles or genres")
            catalog = source.catalog
            ratings = source.interactions
            item_index_ids = source.items.ids
        elif isinstance(source, Catalog):
            catalog = source
            item_index_ids = source.item_ids
        else:
            raise TypeError(f"expected a Dataset, Catalog or Bundle, got {type(source).__name__}")
        if train is not None:
            ratings = train
        movies = catalog_movies(catalog.movies).drop_duplicates("movieId").sort_values("movieId")
        movies = movies.reset_index(drop=True)
        ids = movies["movieId"].to_numpy(np.int64)
        aligned: Interactions | None = None
        counts: np.ndarray | None = None
        if features == "weighted-genres" and (ratings is None or item_index_ids is None):
            raise MovieRecError("weighted-genres needs ratings, and this data has none (a catalogue without "
                                "ratings.csv): use --features genres, tags, genome, year or all")
        if ratings is not None and item_index_ids is not None:
            if ratings.n_items != len(item_index_ids):
                raise MovieRecError("train's item indices do not match the dataset's items")
            item_index_ids = np.asarray(item_index_ids, dtype=np.int64)
            row = np.minimum(np.searchsorted(ids, item_index_ids), max(len(ids) - 1, 0))
            row_ok = ids[row] == item_index_ids if len(ids) else np.zeros(len(item_index_ids), bool)
            keep = row_ok[ratings.item]
            aligned = Interactions(ratings.user[keep], row[ratings.item[keep]], ratings.rating[keep],
                                   ratings.timestamp[keep], ratings.n_users, len(ids))
            counts = np.bincount(aligned.item, minlength=len(ids)).astype(np.int64)
        try:
            feats = build_item_features(Catalog(movies=movies, tags=catalog.tags, genome_scores=catalog.genome_scores,
                                                genome_tags=catalog.genome_tags), ids, features, train=aligned)
        except ValueError as e:
            raise MovieRecError(str(e)) from None
        genres = movies["genres"].map(lambda gs: "|".join(gs) if isinstance(gs, list | tuple | np.ndarray) else "")
        return cls(feats, features, display_titles(movies).to_numpy(object), genres.to_numpy(object),
                   None, movies, counts)

    def resolve(self, query: str | int) -> int:
        if isinstance(query, int | np.integer):
            query = str(int(query))
        text = str(query).strip()
        if re.fullmatch(r"\d+", text):  # a movieId: no need for the title index
            if self.features.rows(int(text))[0] < 0:
                raise MovieRecError(f"unknown movie id {int(text)}")
            return int(text)
        if self.titles is None:
            self.titles = TitleIndex.build(self.movies)
        return self.titles.resolve(query)

    def top_k(self, row: int, measure: str = "dot", k: int = 10, min_ratings: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the k movies most similar to row ``row`` (itself excluded; ties by movieId;
        only movies with at least ``min_ratings`` ratings where rating counts are known)."""
        s = self.features.similarity(np.array([row]), measure)[0]
        s[row] = -np.inf
        valid = s > 0 if measure in ("dot", "cosine") else np.isfinite(s)
        if min_ratings > 0 and self.counts is not None:
            valid &= self.counts >= min_ratings
        cand = np.flatnonzero(valid)
        if len(cand) > k:
            kth = np.partition(s[cand], len(cand) - k)[len(cand) - k]
            cand = cand[s[cand] >= kth]
        order = np.lexsort((self.features.item_ids[cand], -s[cand]))[:k]
        return cand[order], s[cand[order]]

    def query(self, query: str | int, measure: str = "dot", k: int = 10, min_ratings: int = 5) -> pd.DataFrame:
        """The k movies most similar to ``query`` (title or id): rank, movieId, title, genres, score.

        ``df.attrs`` holds "query" (movieId, title, genres), "measure", "features" and "min_ratings"
        (None where rating counts are unknown, so no floor applied).
        """
        _check(measure, self.feature_kind)
        if k < 1:
            raise MovieRecError("-k must be at least 1")
        if min_ratings < 0:
            raise MovieRecError("--min-ratings must be at least 0")
        mid = self.resolve(query)
        row = int(self.features.rows(mid)[0])
        if row < 0 or self.features.matrix.indptr[row + 1] == self.features.matrix.indptr[row]:
            raise MovieRecError(f"{self.display[row] if row >= 0 else mid} has no {self.feature_kind} features to "
                                f"compare (e.g. no genres listed or no tags); try other --features")
        rows, scores = self.top_k(row, measure, k, min_ratings)
        df = pd.DataFrame({
            "rank": np.arange(1, len(rows) + 1), "movieId": self.features.item_ids[rows],
            "title": self.display[rows], "genres": self.genres[rows], "score": scores.astype(np.float64),
        })
        df.attrs.update({
            "query": {"movieId": int(mid), "title": str(self.display[row]), "genres": str(self.genres[row])},
            "measure": measure, "features": self.feature_kind,
            "min_ratings": int(min_ratings) if self.counts is not None else None,
        })
        return df


def similar_movies(dataset_or_catalog, query: str | int, measure: str = "dot", features: str = "weighted-genres",
                   k: int = 10, train: Interactions | None = None, min_ratings: int = 5) -> pd.DataFrame:
    """The k movies most like ``query`` (a title or movieId): rank, movieId, title ("Title (Year)"),
    genres ("A|B"), score. ``dataset_or_catalog``: a Dataset, a Catalog (no ratings: every feature kind
    but weighted-genres) or a model Bundle. ``train``: ratings (in the dataset's item-index order) to use
    instead of all of the dataset's. ``min_ratings``: with ratings, only movies rated at least this often
    are returned. ``df.attrs["query"]`` describes the query movie."""
    _check(measure, features)
    return SimilarityIndex.build(dataset_or_catalog, features, train).query(query, measure, k, min_ratings)


__all__ = [
    "SIMILAR_FEATURES", "SimilarityIndex", "TitleIndex", "catalog_from_bundle", "default_features", "load_source",
    "resolve_title", "similar_movies",
]
