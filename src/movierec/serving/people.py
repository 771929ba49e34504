"""People and their ratings, stored in a database (SQLAlchemy 2 Core): what ``movierec serve --db URL`` keeps.

A person is created with a secret token (:func:`secrets.token_urlsafe`, 256 bits); only its SHA-256 is stored,
and every read or write of the person's ratings must show the token. A person rates each movie at most once:
a new rating of the same movie replaces the old one and becomes the latest. Ratings come back in the order
they were last given (``rated_ns``, nanoseconds since the epoch, then the movie), so a sequential model reads
the person's session in time order.

Databases: SQLite (a file; WAL journal with ``synchronous=FULL``, so a rating acknowledged is on disk when the
commit returns, even if the process is killed right after) and PostgreSQL (``postgresql+psycopg://...``;
its commits are durable by default). The schema is versioned: ``movierec_schema`` holds the version, the
tables are created on the first start, an older version is upgraded by the explicit steps of
:data:`UPGRADES`, and a database written by a newer movierec is refused.

Movie ids are stored as their JSON text (``50`` or ``"SKU-50"``), so MovieLens' integers and an import's own
string ids both come back as they went in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from movierec.errors import MovieRecError

SCHEMA_VERSION = 1
TOKEN_BYTES = 32  # 256 bits


class PersonNotFound(MovieRecError):
    """No such person, or not this token's: the API answers 403 either way (nothing says which)."""


@dataclass(frozen=True)
class StoredRating:
    movie_id: int | str
    rating: float
    rated_ns: int


def database_url(value: str, default_folder: Path) -> str:
    """A ``--db`` value as a SQLAlchemy URL: a URL as given (``sqlite:///...``, ``postgresql+psycopg://...``),
    ``default`` for ``people.sqlite`` in ``default_folder``, anything else a SQLite file's path."""
    if "://" in value:
        return value
    path = default_folder / "people.sqlite" if value == "default" else Path(value).expanduser()
    return f"sqlite:///{path.resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database).expanduser().resolve()


def _tables():
    from sqlalchemy import BigInteger, Column, Float, ForeignKey, Integer, MetaData, String, Table

    meta = MetaData()
    schema = Table("movierec_schema", meta, Column("version", Integer, nullable=False))
    people = Table("people", meta,
                   Column("id", Integer, primary_key=True, autoincrement=True),
                   Column("token_sha256", String(64), nullable=False),
                   Column("created_ns", BigInteger, nullable=False))
    ratings = Table("ratings", meta,
                    Column("person_id", Integer, ForeignKey("people.id", ondelete="CASCADE"), primary_key=True),
                    Column("movie_id", String(1100), primary_key=True),
                    Column("rating", Float, nullable=False),
                    Column("rated_ns", BigInteger, nullable=False))
    return meta, schema, people, ratings


#: version -> the step that upgrades a database of that version to the next (none yet: version 1 is the first)
UPGRADES: dict[int, Callable] = {}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PeopleStore:
    """People and their ratings in the database at ``url`` (module docstring). Thread-safe: each call takes a
    connection from SQLAlchemy's pool and commits before it returns."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine, event

        self.url = url
        path = sqlite_path(url)
        if path is not None:
            if path.is_dir():
                raise MovieRecError(f"--db {path}: a folder, not a database file")
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine = create_engine(url, pool_pre_ping=True)
        except Exception as e:  # a malformed URL or a driver that is not installed
            raise MovieRecError(f"--db {self.shown_url()}: {type(e).__name__}: {e}") from None
        if self.engine.dialect.name == "sqlite":
            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_connection, _record) -> None:
                cur = dbapi_connection.cursor()
                cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
                cur.execute("PRAGMA synchronous=FULL")  # a commit that returned survives a crash
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.close()
        self.meta, self.schema, self.people, self.ratings = _tables()
        self._prepare()

    def shown_url(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "(the URL given)"

    def _prepare(self) -> None:
        """Create the schema on the first start, upgrade an older one, refuse a newer one."""
        from sqlalchemy import inspect, select
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.begin() as conn:
                if not inspect(conn).has_table("movierec_schema"):
                    if inspect(conn).has_table("people"):
                        raise MovieRecError(f"--db {self.shown_url()}: holds a 'people' table that movierec did not "
                                            "make; give another database")
                    self.meta.create_all(conn)
                    conn.execute(self.schema.insert().values(version=SCHEMA_VERSION))
                    return
                version = conn.execute(select(self.schema.c.version)).scalar_one()
                if version > SCHEMA_VERSION:
                    raise MovieRecError(f"--db {self.shown_url()}: written by a newer movierec (schema {version}, this "
                                        f"one reads up to {SCHEMA_VERSION}); upgrade movierec")
                while version < SCHEMA_VERSION:
                    UPGRADES[version](conn)
                    version += 1
                    conn.execute(self.schema.update().values(version=version))
        except SQLAlchemyError as e:
            raise MovieRecError(f"--db {self.shown_url()}: {type(e).__name__}: {str(e).splitlines()[0]}") from None

    def version(self) -> int:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            return conn.execute(select(self.schema.c.version)).scalar_one()

    # -- people ---------------------------------------------------------------------------------------------
    def new_person(self) -> tuple[int, str]:
        """A new person: (id, token). The token is shown once; only its digest is kept."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self.engine.begin() as conn:
            result = conn.execute(self.people.insert().values(token_sha256=_digest(token),
                                                              created_ns=time.time_ns()))
            return int(result.inserted_primary_key[0]), token

    def check(self, person_id: int, token: str) -> None:
        """PersonNotFound unless ``token`` is person ``person_id``'s (a constant-time comparison)."""
        from sqlalchemy import select

        with self.engine.connect() as conn:
            stored = conn.execute(select(self.people.c.token_sha256).where(self.people.c.id == person_id)
                                  ).scalar_one_or_none()
        if stored is None or not hmac.compare_digest(stored, _digest(token)):
            raise PersonNotFound(f"person {person_id}: unknown, or not this token's")

    def count(self) -> int:
        from sqlalchemy import func, select

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.people)).scalar_one())

    # -- ratings --------------------------------------------------------------------------------------------
    def put_rating(self, person_id: int, movie_id: int | str, rating: float) -> StoredRating:
        """Store (or replace) the person's rating of the movie; it becomes their latest. Committed on return."""
        from sqlalchemy import delete

        now = time.time_ns()
        key = json.dumps(movie_id)
        with self.engine.begin() as conn:  # delete + insert: one transaction, portable across databases
            conn.execute(delete(self.ratings).where(self.ratings.c.person_id == person_id,
                                                    self.ratings.c.movie_id == key))
            conn.execute(self.ratings.insert().values(person_id=person_id, movie_id=key, rating=float(rating),
                                                      rated_ns=now))
        return StoredRating(movie_id, float(rating), now)

    def delete_rating(self, person_id: int, movie_id: int | str) -> bool:
        """Remove the person's rating of the movie; False when there was none."""
        from sqlalchemy import delete

        with self.engine.begin() as conn:
            result = conn.execute(delete(self.ratings).where(self.ratings.c.person_id == person_id,
                                                             self.ratings.c.movie_id == json.dumps(movie_id)))
        return result.rowcount > 0

    def ratings_of(self, person_id: int) -> list[StoredRating]:
        """The person's ratings, oldest first (the order they were last given)."""
        from sqlalchemy import select

        r = self.ratings.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(r.movie_id, r.rating, r.rated_ns).where(r.person_id == person_id)
                                .order_by(r.rated_ns, r.movie_id)).all()
        return [StoredRating(json.loads(m), float(v), int(t)) for m, v, t in rows]

    def all_ratings(self) -> list[tuple[int, int | str, float, int]]:
        """Every stored rating as (person id, movie id, rating, rated_ns), by person, oldest first."""
        from sqlalchemy import select

        r = self.ratings.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(r.person_id, r.movie_id, r.rating, r.rated_ns)
                                .order_by(r.person_id, r.rated_ns, r.movie_id)).all()
        return [(int(p), json.loads(m), float(v), int(t)) for p, m, v, t in rows]

    def close(self) -> None:
        self.engine.dispose()
