"""What ``movierec serve`` answers, as plain Python: the HTTP layer (:mod:`movierec.serving.api`) and the
``recommend`` command call these methods and only translate their results and errors.

A :class:`Service` holds one or more :class:`~movierec.serving.served.ServedModel` (by label), the movies
they know (titles, years, genres, training rating counts), a title search, content similarity over genres
and years, and the segments of the study a model comes from. Raw MovieLens ids go in and come out; item
indices stay inside. Errors: :class:`NotFound` for an unknown user, movie or model; ``MovieRecError`` for a
request that cannot be answered as asked (ratings off the scale, no ratings, k out of range).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.dataset import UnknownIdError
from movierec.errors import DataError, MovieRecError
from movierec.serving.served import Recommendations, ServedModel, movies_frame

MAX_K = 100
CONTENT_FEATURES = "all"  # genres and year: all a bundle's movie table holds
CONTENT_MIN_RATINGS = 5  # as `movierec similar`: a movie rated once or twice is noise


class NotFound(MovieRecError):
    """An unknown user, movie or model (HTTP 404)."""


def check_k(k: int, max_k: int | None = MAX_K) -> None:
    if k < 1 or (max_k is not None and k > max_k):
        limit = f"between 1 and {max_k}" if max_k is not None else "at least 1"
        raise MovieRecError(f"k must be {limit} (got {k})")


@dataclass
class Service:
    models: dict[str, ServedModel]
    movies: pd.DataFrame  # movieId, title, year, genres (list), display, ratings; sorted by movieId
    max_k: int | None = MAX_K  # the longest list asked for (None: the catalogue; the command line)
    _folded: pd.Series | None = field(default=None, repr=False)
    _json: list[dict] | None = field(default=None, repr=False)
    _ids: np.ndarray | None = field(default=None, repr=False)
    _content: object | None = field(default=None, repr=False)
    _titles: object | None = field(default=None, repr=False)
    _segments: dict[Path, tuple[pd.Series, pd.DataFrame]] = field(default_factory=dict, repr=False)
    _fold_ins: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(os.cpu_count() or 1), repr=False)

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
            out.append({"name": label, "model": m.model_name, "family": entry.family if entry else None,
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
            raise NotFound(f"unknown model {name!r} (served: {', '.join(self.models)})")
        return self.models[name]

    def movie(self, movie_id: int) -> dict:
        row = self._movie_row(movie_id)
        return self._movie_json(row)

    def _movie_row(self, movie_id: int) -> int:
        if self._ids is None:
            self._ids = self.movies["movieId"].to_numpy(np.int64)
        ids = self._ids
        pos = int(np.searchsorted(ids, movie_id))
        if pos >= len(ids) or ids[pos] != movie_id:
            raise NotFound(f"unknown movie id {movie_id}")
        return pos

    def _movie_json(self, row: int) -> dict:
        if self._json is None:
            self._json = [
                {"movie_id": int(mid), "title": str(t), "year": int(y) if np.isfinite(y) else None,
                 "genres": list(g), "ratings": int(n)}
                for mid, t, y, g, n in zip(self.movies["movieId"], self.movies["display"], self.movies["year"],
                                           self.movies["genres"], self.movies["ratings"], strict=True)]
        return dict(self._json[row])

    def resolve(self, text: str) -> int:
        """A movieId from a title as `movierec similar` matches it, or from a movie id."""
        from movierec.similar import TitleIndex

        if self._titles is None:
            self._titles = TitleIndex.build(self.movies[["movieId", "title", "year", "genres"]])
        return self._titles.resolve(text)

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
            uidx = m.bundle.user_index_of(user_id)
        except UnknownIdError:
            raise NotFound(f"unknown user id {user_id} (model {m.label} knows {m.model.n_users:,} users)") from None
        recs = m.recommend_user(uidx, k)
        shown = m.bundle.user_label(uidx) if m.bundle.has_labels else int(m.bundle.users.ids[uidx])
        return {"model": m.label, "user_id": shown, "recommendations": self._rows(m, recs, 0)}

    def for_person(self, ratings: list[tuple[int, float]], k: int = 10, model: str | None = None) -> dict:
        """Recommendations for someone known only by ``ratings`` [(movieId, rating)] in the order given."""
        check_k(k, self.max_k)
        m = self.model(model)
        if not ratings:
            raise MovieRecError("ratings: rate at least one movie")
        mids = np.array([r[0] for r in ratings], dtype=np.int64)
        values = np.array([r[1] for r in ratings], dtype=np.float64)
        for mid in mids:
            self._movie_row(int(mid))  # 404 for a movie nobody serves
        m.check_ratings(values)
        known = m.bundle.items.contains(mids)
        ignored = [int(x) for x in mids[~known]]
        if not known.any():
            raise MovieRecError(f"model {m.label} knows none of the rated movies ({', '.join(map(str, ignored))})")
        items = m.bundle.items.index(mids[known]).astype(np.int64)
        with self._fold_ins:  # each fold-in copies the network: at most one per core at a time
            recs = m.recommend_history(items, values[known], k)
        return {"model": m.label, "rated": int(known.sum()), "ignored": ignored,
                "recommendations": self._rows(m, recs, 0)}

    def _rows(self, m: ServedModel, recs: Recommendations, row: int) -> list[dict]:
        out = []
        titles = m.titles
        ids = m.bundle.items.ids
        for rank, (i, s, b) in enumerate(zip(recs.items[row], recs.scores[row], recs.because[row], strict=True)):
            if i < 0:
                break
            item = self.movie(int(ids[i]))
            item.update(rank=rank + 1, score=float(s),
                        reason=f"because you rated {titles[b]}" if b >= 0 else None,
                        because_movie_id=int(ids[b]) if b >= 0 else None)
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

    def similar(self, movie_id: int, k: int = 10, by: str = "content", model: str | None = None) -> dict:
        check_k(k, self.max_k)
        query = self.movie(movie_id)
        if by == "content":
            index = self.content_index()
            row = int(index.features.rows(movie_id)[0])
            rows, scores = index.top_k(row, "cosine", k, CONTENT_MIN_RATINGS)
            found = [(int(index.features.item_ids[r]), float(s)) for r, s in zip(rows, scores, strict=True)]
            label = None
        elif by == "model":
            m = self.model(model)
            if not m.bundle.items.contains(movie_id)[0]:
                raise NotFound(f"model {m.label} does not know movie id {movie_id}")
            items, scores = m.similar(int(m.bundle.items.index(movie_id)[0]), k)
            found = [(int(m.bundle.items.raw(i)), float(s)) for i, s in zip(items, scores, strict=True)]
            label = m.label
        else:
            raise MovieRecError(f"by must be content or model (got {by!r})")
        results = [{**self.movie(mid), "rank": r + 1, "score": s} for r, (mid, s) in enumerate(found)]
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
            user_id = int(m.bundle.users.ids[m.bundle.user_index_of(user_id)])  # segments hold raw ids
        except UnknownIdError:
            raise NotFound(f"unknown user id {user_id}") from None
        if user_id not in labels.index:
            raise NotFound(f"unknown user id {user_id}")
        seg = int(labels.loc[user_id])
        if seg < 0:
            return {"user_id": int(user_id), "segment": None, "name": None, "profile": None,
                    "note": "no training ratings, so no segment"}
        row = profiles.loc[seg]
        profile = {c: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for c, v in row.items()}
        return {"user_id": int(user_id), "segment": seg, "name": profile.pop("name", None), "profile": profile,
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
