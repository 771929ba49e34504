"""What ``movierec serve`` answers, as plain Python: the HTTP layer (:mod:`movierec.serving.api`) and the
``recommend`` command call these methods and only translate their results and errors.

A :class:`Service` holds one or more :class:`~movierec.serving.served.ServedModel` (by label), the movies
they know (titles, years, genres, training rating counts), a title search, content similarity over genres
and years, and the segments of the study a model comes from.

Ids are the person's own at both ends: MovieLens' integer ids, or, for data imported with string ids
(:mod:`movierec.data.own`), the original strings (a movie labelled "50" is movie "50", never the integer code 50
that the import gave another movie). Item indices and integer codes stay inside. Errors: :class:`NotFound` for an
unknown user, movie or model (any id that names none: another type, out of range, too long); ``MovieRecError``
for a request that cannot be answered as asked (ratings off the scale, no ratings, k out of range).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.dataset import UnknownIdError
from movierec.data.own import MAX_ID_CHARS
from movierec.errors import DataError, MovieRecError
from movierec.serving.served import Recommendations, ServedModel, movies_frame, uses_own_item_ids

MAX_K = 100
MAX_ID_LENGTH = MAX_ID_CHARS  # characters of a user or movie id (as imports allow); a longer one names nothing
CONTENT_FEATURES = "all"  # genres and year: all a bundle's movie table holds
CONTENT_MIN_RATINGS = 5  # as `movierec similar`: a movie rated once or twice is noise


class NotFound(MovieRecError):
    """An unknown user, movie or model (HTTP 404)."""


def shown_id(value: object, limit: int = 40) -> str:
    """An id as an error message shows it: its text (a string's, an integer's digits, or repr), cut to ``limit``
    characters; an integer too long to print (Python refuses over 4,300 digits) by its size."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        n = int(value)
        if abs(n) >= 10 ** limit:
            return f"(an integer of about {int(n.bit_length() * 0.30103)} digits)"
        text = str(n)
    else:
        text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def user_index(served: ServedModel, user_id: int | str) -> int:
    """Index of a known user by the user's own id (:meth:`~movierec.artifacts.Bundle.user_index_of`); UnknownIdError
    also for an id too long to be one (an integer of thousands of digits is never parsed)."""
    if isinstance(user_id, str) and len(user_id.strip()) > MAX_ID_LENGTH:
        raise UnknownIdError("user", shown_id(user_id.strip()))
    if isinstance(user_id, int | np.integer) and not -(1 << 63) <= int(user_id) < (1 << 63):
        raise UnknownIdError("user", shown_id(user_id))
    return served.bundle.user_index_of(user_id)


def check_k(k: int, max_k: int | None = MAX_K) -> None:
    if k < 1 or (max_k is not None and k > max_k):
        limit = f"between 1 and {max_k}" if max_k is not None else "at least 1"
        raise MovieRecError(f"k must be {limit} (got {k})")


@dataclass
class Service:
    models: dict[str, ServedModel]
    movies: pd.DataFrame  # movieId (the key), item (the public id), title, year, genres, display, ratings
    max_k: int | None = MAX_K  # the longest list asked for (None: the catalogue; the command line)
    #: whether movies are named by their own string ids (data imported with string item ids), else by integers
    own_ids: bool = field(default=False, init=False)
    _row_of: dict = field(default_factory=dict, init=False, repr=False)  # public id -> row of movies
    _item_rows: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)  # model -> row per item
    _row_items: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)  # model -> item per row
    _folded: pd.Series | None = field(default=None, repr=False)
    _json: list[dict] | None = field(default=None, repr=False)
    _content: object | None = field(default=None, repr=False)
    _titles: object | None = field(default=None, repr=False)
    _segments: dict[Path, tuple[pd.Series, pd.DataFrame]] = field(default_factory=dict, repr=False)
    #: when the models were loaded (seconds since the epoch): a reload makes a new Service
    loaded_at: float = field(default_factory=time.time, repr=False)

    def __post_init__(self) -> None:
        """The maps between the public movie ids, rows of ``movies`` and each model's item indices."""
        self.own_ids = uses_own_item_ids(list(self.models.values()))
        column = self.movies["item"] if "item" in self.movies else self.movies["movieId"]
        public = column.to_numpy(dtype=str) if self.own_ids else column.to_numpy(dtype=np.int64)
        self._row_of = dict(zip(public.tolist(), range(len(public)), strict=True))
        index = pd.Index(public)
        for label, m in self.models.items():
            ids = m.bundle.items.label_array().astype(str) if self.own_ids else m.bundle.items.ids
            rows = index.get_indexer(pd.Index(ids)).astype(np.int64)
            items = np.full(len(public), -1, dtype=np.int64)
            items[rows[rows >= 0]] = np.flatnonzero(rows >= 0)
            self._item_rows[label], self._row_items[label] = rows, items

    @classmethod
    def open(cls, paths: list[str | Path], cache_users: int = 50_000, warm: bool = True,
             max_k: int | None = MAX_K, segments: str | Path | None = None) -> Service:
        """Load every path (run folder, bundle or study folder); labels are made unique. ``cache_users``: known
        users whose lists each model keeps (0: score every request); ``warm``: build the lazy parts now;
        ``segments``: a `movierec segments --out` folder that answers for every model."""
        from movierec.serving.served import check_segments_folder

        segments_folder = check_segments_folder(segments) if segments is not None else None
        if not paths:
            raise MovieRecError("name at least one run folder, model bundle or study folder to serve")
        served: dict[str, ServedModel] = {}
        opened: set[Path] = set()
        from movierec.serving.served import is_study, study_bundles

        expanded = [b for p in paths for b in (study_bundles(Path(p)) if is_study(Path(p)) else [p])]
        for p in expanded:
            m = ServedModel.open(p)
            if m.path.resolve() in opened:  # a study's model named again by its own path
                continue
            opened.add(m.path.resolve())
            label, n = m.model_name, 2
            while label in served:
                label, n = f"{m.model_name}-{n}", n + 1
            m.label, m.cache_users = label, cache_users
            if segments_folder is not None:
                m.segments_folder = segments_folder
            served[label] = m
        service = cls(served, movies_frame(list(served.values())), max_k)
        if warm:
            service.warm_up()
        return service

    def warm_up(self) -> None:
        """Build the lazy parts (title keys, content features, first scores) before the first request."""
        from movierec.similar import fold

        self._folded = fold(self.movies["display"])
        self._movie_json(0) if len(self.movies) else None
        self.content_index()
        for m in self.models.values():
            m.liked()
            if m.model.n_users:
                m.recommend_users(np.array([0]), 1)
            if m.model.n_items:
                m.recommend_history(np.array([0]), np.array([m.rating_scale[1]]), 1)

    def model_info(self) -> list[dict]:
        from movierec.models.registry import REGISTRY

        out = []
        for label, m in self.models.items():
            entry = REGISTRY.get(m.model_name)
            test = m.test_metrics_at_10()
            run_id = hashlib.sha256(json.dumps(m.bundle.config, sort_keys=True, default=str).encode()).hexdigest()
            out.append({"name": label, "model": m.model_name, "family": entry.family if entry else None,
                        "run_id": run_id[:12],
                        "loaded_at": datetime.fromtimestamp(self.loaded_at, tz=UTC).isoformat(timespec="seconds"),
                        "summary": entry.summary if entry else None, "path": str(m.path),
                        "users": int(m.model.n_users), "movies": int(m.model.n_items),
                        "segments": m.segments_dir() is not None,
                        "similar": m.model.n_items > 0 and m.model.item_similarity(np.zeros(1, np.int64),
                                                                                    np.zeros(1, np.int64)) is not None,
                        "test_metrics": test if isinstance(test, dict) and test else None})
        return out

    # -- lookups ---------------------------------------------------------------------------------------
    def model(self, name: str | None) -> ServedModel:
        if name is None:
            return next(iter(self.models.values()))
        if name not in self.models:
            raise NotFound(f"unknown model {shown_id(name)!r} (served: {', '.join(self.models)})")
        return self.models[name]

    def movie(self, movie_id: int | str) -> dict:
        """The movie of a public id (an int, or its text; with own string ids, the string)."""
        return self._movie_json(self._movie_row(movie_id))

    def public_id(self, row: int) -> int | str:
        """The id people see of row ``row`` of ``movies``: an int, or the own string id."""
        return self._movie_json(row)["movie_id"]

    def key(self, movie_id: object) -> int | str | None:
        """The public id ``movie_id`` (as a request or command line gives it) in the service's own form, or None
        when it cannot name a movie: with own string ids, the text of a string or an integer ("50" and 50 are
        movie "50"); else an integer, or the text of one. Anything else (floats, booleans, lists) names none."""
        if isinstance(movie_id, bool) or not isinstance(movie_id, str | int | np.integer):
            return None
        if isinstance(movie_id, str):
            text = movie_id.strip()
            if self.own_ids:
                return text if 0 < len(text) <= MAX_ID_LENGTH else None
            return int(text) if re.fullmatch(r"[-+]?\d{1,19}", text) else None
        if not -(1 << 63) <= int(movie_id) < (1 << 63):
            return None
        return str(int(movie_id)) if self.own_ids else int(movie_id)

    def serves(self, movie_id: object) -> bool:
        """Whether ``movie_id`` names a movie of a served model."""
        key = self.key(movie_id)
        return key is not None and key in self._row_of

    def _movie_row(self, movie_id: object) -> int:
        """Row of ``movies`` of a public id; NotFound when it names no served movie."""
        key = self.key(movie_id)
        row = self._row_of.get(key) if key is not None else None
        if row is None:
            raise NotFound(f"unknown movie id {shown_id(movie_id)}")
        return row

    def _movie_json(self, row: int) -> dict:
        if self._json is None:
            public = self.movies["item"] if "item" in self.movies else self.movies["movieId"]
            self._json = [
                {"movie_id": str(mid) if self.own_ids else int(mid), "title": str(t),
                 "year": int(y) if np.isfinite(y) else None, "genres": list(g), "ratings": int(n)}
                for mid, t, y, g, n in zip(public, self.movies["display"], self.movies["year"],
                                           self.movies["genres"], self.movies["ratings"], strict=True)]
        return dict(self._json[row])

    def resolve(self, text: str) -> int | str:
        """The public id of the movie ``text`` names: its id (with own string ids: the exact string id first, so
        "SKU-50" and "50" are the movies labelled so), else its title as `movierec similar` matches it."""
        from movierec.similar import TitleIndex

        key = self.key(text)
        if key in self._row_of:
            return key
        if re.fullmatch(r"[-+]?\d+", str(text).strip()):  # an id, never the integer code of an own string id
            raise MovieRecError(f"unknown movie id {shown_id(str(text).strip())}")
        if self._titles is None:
            self._titles = TitleIndex.build(self.movies[["movieId", "title", "year", "genres"]])
        try:
            key = self._titles.resolve(text)
        except MovieRecError as e:
            raise MovieRecError(self._public_ids_in(str(e))) from None
        return self.public_id(int(np.searchsorted(self.movies["movieId"].to_numpy(), key)))

    def _public_ids_in(self, message: str) -> str:
        """A title-search message with its "[movieId]" marks as public ids (the own string ids; unchanged else)."""
        if not self.own_ids:
            return message
        keys = self.movies["movieId"].to_numpy()

        def public(m: re.Match) -> str:
            pos = int(np.searchsorted(keys, int(m[1])))
            return f"[{self.public_id(pos)}]" if pos < len(keys) and keys[pos] == int(m[1]) else m[0]

        return re.sub(r"\[(\d{1,19})\]", public, message)

    def search(self, q: str, limit: int = 10) -> list[dict]:
        """Movies whose title contains ``q`` (case and accents ignored): titles that start with it first,
        then the most rated."""
        from movierec.similar import fold_one

        if not 1 <= limit <= MAX_K:
            raise MovieRecError(f"limit must be between 1 and {MAX_K} (got {limit})")
        needle = fold_one(q)
        if not needle:
            raise MovieRecError("q: give a word of the title")
        if self._folded is None:
            from movierec.similar import fold

            self._folded = fold(self.movies["display"])
        folded = self._folded
        hit = np.flatnonzero(folded.str.contains(needle, regex=False).to_numpy())
        starts = folded.iloc[hit].str.startswith(needle).to_numpy()
        order = np.lexsort((self.movies["movieId"].to_numpy()[hit], -self.movies["ratings"].to_numpy()[hit], ~starts))
        return [self._movie_json(int(r)) for r in hit[order][:limit]]

    # -- recommendations ---------------------------------------------------------------------------------
    def for_user(self, user_id: int | str, k: int = 10, model: str | None = None) -> dict:
        """A known user's list; ``user_id`` is the raw id, or the user's own id for data imported with string
        ids (:mod:`movierec.data.own`)."""
        check_k(k, self.max_k)
        m = self.model(model)
        try:
            uidx = user_index(m, user_id)
        except UnknownIdError:
            raise NotFound(f"unknown user id {shown_id(user_id)} (model {m.label} knows {m.model.n_users:,} users)"
                           ) from None
        recs = m.recommend_user(uidx, k)
        shown = m.bundle.user_label(uidx) if m.bundle.has_labels else int(m.bundle.users.ids[uidx])
        return {"model": m.label, "user_id": shown, "recommendations": self._rows(m, recs, 0)}

    def for_person(self, ratings: list[tuple[int | str, float]], k: int = 10, model: str | None = None) -> dict:
        """Recommendations for someone known only by ``ratings`` [(public movie id, rating)] in the order given."""
        check_k(k, self.max_k)
        m = self.model(model)
        if not ratings:
            raise MovieRecError("ratings: rate at least one movie")
        rows = np.array([self._movie_row(r[0]) for r in ratings], dtype=np.int64)  # 404 for a movie nobody serves
        try:
            values = np.array([r[1] for r in ratings], dtype=np.float64)
        except (TypeError, ValueError):
            raise MovieRecError("ratings: every rating must be a number") from None
        m.check_ratings(values)
        all_items = self._row_items[m.label][rows]
        known = all_items >= 0
        ignored = [self.public_id(int(r)) for r in rows[~known]]
        if not known.any():
            raise MovieRecError(f"model {m.label} knows none of the rated movies ({', '.join(map(str, ignored))})")
        items = all_items[known]
        recs = m.recommend_history(items, values[known], k)  # batched with other people's, one batch per core
        return {"model": m.label, "rated": int(known.sum()), "ignored": ignored,
                "recommendations": self._rows(m, recs, 0)}

    def for_stored(self, person_id: int, rated: list, k: int = 10, model: str | None = None) -> dict:
        """A stored person's list from their ratings ``rated`` [StoredRating], oldest first. Where the model was
        refreshed on exactly these ratings (:mod:`movierec.serving.refresh`), the person is a trained user and gets
        that user's list (``as_user``: the user id); otherwise (``as_user`` None) their history is scored now."""
        from movierec.serving.refresh import history_digest

        m = self.model(model)
        user = m.people.get(int(person_id))
        if user is not None and user[1] == history_digest((r.movie_id, r.rating, r.rated_ns) for r in rated):
            try:
                uidx = m.user_index(user[0])
            except UnknownIdError:  # a run folder whose people.json names users its model lacks: fold in
                uidx = None
            if uidx is not None:
                out = self.for_user(m.bundle.user_label(uidx) if m.bundle.has_labels else user[0], k, m.label)
                knows = self._row_items[m.label]
                known = [self.serves(r.movie_id) and knows[self._movie_row(r.movie_id)] >= 0 for r in rated]
                return {"model": out["model"], "rated": sum(known), "as_user": out["user_id"],
                        "ignored": [r.movie_id for r, ok in zip(rated, known, strict=True) if not ok],
                        "recommendations": out["recommendations"]}
        served = [r for r in rated if self.serves(r.movie_id)]  # a movie no served model has any more: left out
        return {**self.for_person([(r.movie_id, r.rating) for r in served], k, model), "as_user": None}

    def _rows(self, m: ServedModel, recs: Recommendations, row: int) -> list[dict]:
        out = []
        titles = m.titles
        rows = self._item_rows[m.label]
        for rank, (i, s, b) in enumerate(zip(recs.items[row], recs.scores[row], recs.because[row], strict=True)):
            if i < 0:
                break
            item = self._movie_json(int(rows[i]))
            item.update(rank=rank + 1, score=float(s),
                        reason=f"because you rated {titles[b]}" if b >= 0 else None,
                        because_movie_id=self.public_id(int(rows[b])) if b >= 0 else None)
            out.append(item)
        return out

    # -- similar movies ------------------------------------------------------------------------------------
    def content_index(self):
        if self._content is None:
            from movierec.data.dataset import Catalog
            from movierec.similar import SimilarityIndex

            catalog = Catalog(movies=self.movies[["movieId", "title", "year", "genres"]])
            index = SimilarityIndex.build(catalog, CONTENT_FEATURES)
            pos = np.searchsorted(self.movies["movieId"].to_numpy(), index.features.item_ids)
            index.counts = self.movies["ratings"].to_numpy()[pos]
            self._content = index
        return self._content

    def similar(self, movie_id: int | str, k: int = 10, by: str = "content", model: str | None = None) -> dict:
        """The k movies most like a public movie id: by content (genres and year) or by a model's own notion."""
        check_k(k, self.max_k)
        at = self._movie_row(movie_id)
        query = self._movie_json(at)
        if by == "content":
            index = self.content_index()
            keys = self.movies["movieId"].to_numpy()
            row = int(index.features.rows(int(keys[at]))[0])
            rows, scores = index.top_k(row, "cosine", k, CONTENT_MIN_RATINGS)
            found = [(int(np.searchsorted(keys, index.features.item_ids[r])), float(s))
                     for r, s in zip(rows, scores, strict=True)]
            label = None
        elif by == "model":
            m = self.model(model)
            item = int(self._row_items[m.label][at])
            if item < 0:
                raise NotFound(f"model {m.label} does not know movie id {query['movie_id']}")
            items, scores = m.similar(item, k)
            found = [(int(self._item_rows[m.label][i]), float(s)) for i, s in zip(items, scores, strict=True)]
            label = m.label
        else:
            raise MovieRecError(f"by must be content or model (got {by!r})")
        results = [{**self._movie_json(r), "rank": n + 1, "score": s} for n, (r, s) in enumerate(found)]
        return {"movie": query, "by": by, "model": label, "results": results}

    # -- segments -------------------------------------------------------------------------------------------
    def segment(self, user_id: int | str, model: str | None = None) -> dict:
        m = self.model(model)
        folder = m.segments_dir()
        if folder is None:
            raise NotFound(f"model {m.label} does not come from a study with segments (serve a study folder or "
                           "one of its runs/*/model bundles, or pass serve --segments DIR)")
        labels, profiles = self._load_segments(folder)
        try:
            uidx = user_index(m, user_id)
        except UnknownIdError:
            raise NotFound(f"unknown user id {shown_id(user_id)}") from None
        raw = int(m.bundle.users.ids[uidx])  # segments hold raw ids
        shown = m.bundle.user_label(uidx) if m.bundle.has_labels else raw  # the user's own id
        if raw not in labels.index:
            raise NotFound(f"unknown user id {shown_id(shown)}")
        seg = int(labels.loc[raw])
        if seg < 0:
            return {"user_id": shown, "segment": None, "name": None, "profile": None,
                    "note": "no training ratings, so no segment"}
        row = profiles.loc[seg]
        profile = {c: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for c, v in row.items()}
        return {"user_id": shown, "segment": seg, "name": profile.pop("name", None), "profile": profile,
                "note": None}

    def _load_segments(self, folder: Path) -> tuple[pd.Series, pd.DataFrame]:
        if folder not in self._segments:
            try:
                labels = pd.read_parquet(folder / "segments.parquet")
                profiles = pd.read_csv(folder / "profiles.csv", index_col=0)
            except (OSError, ValueError) as e:
                raise DataError(f"segments cannot be read ({e})", folder) from None
            self._segments[folder] = (labels.set_index("userId")["segment"], profiles)
        return self._segments[folder]
