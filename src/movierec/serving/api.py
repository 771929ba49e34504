"""The HTTP API and web page of ``movierec serve`` (FastAPI; OpenAPI at ``/docs``).

    GET  /health                                   200 once every model is loaded, 503 while loading or failed
    GET  /v1/models                                the served models
    GET  /v1/users/{user_id}/recommendations       ?k=10&model=NAME   a known user
    POST /v1/recommendations                       {"ratings": [{"movie_id": 1, "rating": 5}], "k": 10, "model": ...}
    GET  /v1/movies                                ?q=toy&limit=10    title search
    GET  /v1/movies/{movie_id}                     one movie
    GET  /v1/movies/{movie_id}/similar             ?k=10&by=content|model&model=NAME
    GET  /v1/users/{user_id}/segment               ?model=NAME        the user's segment (models from a study)
    With --db (:mod:`movierec.serving.people`), people and their ratings are stored:
    POST   /v1/people                              a new person: {"person_id", "token"} (rate-limited per client)
    PUT    /v1/people/{id}/ratings/{movie_id}      {"rating": 4.5}           the person's token as Bearer
    DELETE /v1/people/{id}/ratings/{movie_id}
    GET    /v1/people/{id}/ratings                 oldest first
    GET    /v1/people/{id}/recommendations         ?k=10&model=NAME   from the stored ratings in time order
    GET  /                                         the web page (static/, no CDN, no build step)
    GET  /docs, /redoc                             the API's documentation (Swagger UI, ReDoc), served offline

Ids are the people's own: MovieLens' integers, or the original strings of data imported with string ids
(``movie_id`` "SKU-50"; a JSON number 50 there is movie "50", never an integer code of the import).

Every error is JSON ``{"detail": "one line"}``: 401 without a person's token, 403 with another's (or for a
person that does not exist); 404 for an unknown user, movie or model (any id that names none: out of range,
another type); 413 for a body over 1 MiB (:mod:`movierec.serving.limits`); 422 for a malformed
body or query, ratings off the scale, an empty list, more than 1,000 ratings or k out of range; 429 (with
Retry-After) for a client over its rate of new people or rating writes; 503 while loading. No input gives a
500. The models are loaded in a background thread when the app starts, so ``/health`` answers at once and says
when it is ready. Handlers are plain functions (FastAPI runs them in its
thread pool), so numpy scoring uses both cores. :func:`serve` runs the app on uvicorn with the limits of
:mod:`movierec.serving.limits` (request deadline, connection cap, keep-alive and head-size limits).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from movierec import __version__
from movierec.errors import MovieRecError
from movierec.serving.limits import (
    MAX_BODY,
    NEW_PEOPLE_PER_MINUTE,
    WRITES_PER_MINUTE,
    BodyLimit,
    ClientRateLimit,
    Limits,
)
from movierec.serving.people import PeopleStore, PersonNotFound
from movierec.serving.service import MAX_ID_LENGTH, MAX_K, NotFound, Service, shown_id

STATIC = Path(__file__).parent / "static"
MAX_RATINGS = 1000
DOCS_ASSETS = "/static-docs"  # Swagger UI and ReDoc, from the fastapi-offline package (no CDN)

IdPath = Annotated[str, PathParam(max_length=MAX_ID_LENGTH)]


def _movie_id(value: object) -> int | str:
    """A movie id as a request gives it: an integer or a string of 1 to MAX_ID_LENGTH characters (a float, a
    boolean or anything else is refused here; whether it names a movie, the service says)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("a movie id is an integer or a string")
    if isinstance(value, str) and not 0 < len(value) <= MAX_ID_LENGTH:
        raise ValueError(f"a movie id has 1 to {MAX_ID_LENGTH} characters")
    return value


MovieId = Annotated[int | str, PlainValidator(_movie_id), WithJsonSchema({
    "anyOf": [{"type": "integer"}, {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}],
    "description": "The movie's id: MovieLens' integer, or the own string id of data imported with string ids"})]


# -------------------------------------------------------------------------------------------------- schemas
class Movie(BaseModel):
    movie_id: int | str = Field(description="The movie's id (its own string id for data imported with them)")
    title: str = Field(description="Title with its year, as MovieLens writes it")
    year: int | None
    genres: list[str]
    ratings: int = Field(description="Training ratings of the movie (its popularity in the model's data)")


class RecommendedMovie(Movie):
    rank: int
    score: float = Field(description="The model's score (comparable within one list only)")
    reason: str | None = Field(description='Why, where the model can say: "because you rated ..."')
    because_movie_id: int | str | None


class UserRecommendations(BaseModel):
    model: str
    user_id: int | str = Field(description="The user's id (their own string id for data imported with them)")
    recommendations: list[RecommendedMovie]


class Rating(BaseModel):
    model_config = ConfigDict(extra="forbid")
    movie_id: MovieId
    rating: float = Field(allow_inf_nan=False)


class RecommendationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ratings: list[Rating] = Field(max_length=MAX_RATINGS,
                                  description="The person's ratings, oldest first (a session's order)")
    k: int = Field(10, ge=1, le=MAX_K)
    model: str | None = Field(None, description="A served model's name (default: the first)")


class PersonRecommendations(BaseModel):
    model: str
    rated: int = Field(description="Ratings the model used")
    ignored: list[int | str] = Field(description="Rated movie ids this model does not know (another served model "
                                                 "may)")
    recommendations: list[RecommendedMovie]


class SimilarMovie(Movie):
    rank: int
    score: float


class SimilarMovies(BaseModel):
    movie: Movie
    by: str
    model: str | None
    results: list[SimilarMovie]


class Segment(BaseModel):
    user_id: int | str
    segment: int | None
    name: str | None
    profile: dict[str, Any] | None
    note: str | None


class ModelInfo(BaseModel):
    name: str
    model: str
    run_id: str = Field(description="Identifies the served run (a hash of its bundle's configuration)")
    loaded_at: str = Field(description="When the server loaded it (UTC, ISO 8601); a reload loads anew")
    family: str | None
    summary: str | None
    path: str
    users: int
    movies: int
    segments: bool = Field(description="Whether /v1/users/{id}/segment answers for this model")
    similar: bool = Field(description="Whether the model has a notion of similar movies (by=model)")
    test_metrics: dict[str, dict[str, float]] | None


class Health(BaseModel):
    status: str
    version: str
    models: list[str]
    people: bool = Field(False, description="Whether people and their ratings are stored (serve --db)")
    error: str | None = None


class NewPerson(BaseModel):
    person_id: int
    token: str = Field(description="The person's secret (256 bits): send it as `Authorization: Bearer <token>`; "
                                   "it is shown once")


class RatingValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: float = Field(allow_inf_nan=False)


class StoredRatingOut(BaseModel):
    movie_id: int | str
    title: str | None = Field(description="None for a movie no served model has (any more)")
    rating: float
    rated_at: str = Field(description="When it was last given, UTC, ISO 8601")


class PersonRatings(BaseModel):
    person_id: int
    ratings: list[StoredRatingOut] = Field(description="Oldest first")


class StoredPersonRecommendations(PersonRecommendations):
    person_id: int
    as_user: int | str | None = Field(description="The user id this person has in the model, which was trained on "
                                                  "exactly their stored ratings (movierec refresh); null: their "
                                                  "stored ratings were scored at this request")


# -------------------------------------------------------------------------------------------------- app
class _State:
    def __init__(self, paths: list[str | Path] | None) -> None:
        self.service: Service | None = None  # replaced whole by a reload: a request keeps the one it started with
        self.error: str | None = None
        self.ready = threading.Event()
        self.paths = list(paths or [])
        self.reload: dict[str, Any] = {"status": "idle", "runs": [str(p) for p in self.paths], "error": None}
        self.reloading = threading.Lock()


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    runs: list[str] | None = Field(None, min_length=1, max_length=100,
                                   description="Run folders, bundles or study folders to serve from now on "
                                               "(default: the same ones, read again)")


class ReloadStatus(BaseModel):
    status: str = Field(description="idle, loading, done or failed (the served models stay until a load is done)")
    runs: list[str]
    error: str | None = None


def create_app(paths: list[str | Path] | None = None, service: Service | None = None,
               cache_users: int = 50_000, one_thread_per_request: bool = False,
               segments: str | Path | None = None, threads: int | None = None, max_body: int = MAX_BODY,
               people: PeopleStore | None = None, new_people_per_minute: int = NEW_PEOPLE_PER_MINUTE,
               writes_per_minute: int = WRITES_PER_MINUTE, api_key: str | None = None) -> FastAPI:
    """The app for a loaded ``service``, or one that loads ``paths`` in a background thread at startup.

    ``max_body``: bytes of a request body (413 beyond, before parsing; :class:`~movierec.serving.limits.BodyLimit`).
    ``people``: the store of people and their ratings (the /v1/people endpoints; without it they answer 404),
    with ``new_people_per_minute`` and ``writes_per_minute`` per client address (429 beyond). ``api_key``: the
    admin key the /v1/admin endpoints ask for (None: they answer 403). ``app.state.reload(runs)`` loads ``runs``
    (None: the same paths again) in a background thread and swaps them in whole once loaded (SIGHUP calls it).

    ``one_thread_per_request``: numpy's BLAS and torch compute on one thread each, because requests already
    run side by side in the thread pool (two threads per library per request on two cores made a GMF request
    on a 27k-movie catalogue 30 times slower, and a NeuMF fold-in 20 times slower). ``threads``: the size of
    that pool (FastAPI's default is 40)."""
    if (paths is None) == (service is None):
        raise ValueError("give paths or a service")
    state = _State(paths)
    if service is not None:
        state.service = service
        state.ready.set()

    if one_thread_per_request:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)

    def load() -> None:
        try:
            service = Service.open(list(paths or []), cache_users=cache_users, segments=segments)
            if one_thread_per_request and "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(1)
            state.service = service
        except MovieRecError as e:
            state.error = str(e)
        except Exception as e:
            state.error = f"{type(e).__name__}: {e}"
        finally:
            state.ready.set()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if threads is not None:  # handlers run in this many threads: more only fight over the GIL
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        if not state.ready.is_set():
            threading.Thread(target=load, name="movierec-load", daemon=True).start()
        yield

    assets = docs_assets()
    app = FastAPI(title="movierec", version=__version__, lifespan=lifespan,
                  docs_url=None if assets else "/docs", redoc_url=None if assets else "/redoc",
                  description="Movie recommendations for known users and new people, with reasons.")
    app.state.movierec = state
    app.add_middleware(BodyLimit, max_body=max_body)
    if assets is not None:
        _offline_docs(app, assets)

    def svc() -> Service:
        if state.service is None:
            if state.error is not None:
                raise _Unavailable(f"the models failed to load: {state.error}")
            raise _Unavailable("loading the models; try again in a moment (GET /health says when ready)")
        return state.service

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(_Unavailable)
    async def unavailable(request: Request, exc: _Unavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(MovieRecError)
    async def bad_request(request: Request, exc: MovieRecError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc.errors())}, status_code=422)

    @app.exception_handler(PersonNotFound)
    @app.exception_handler(_Forbidden)
    async def forbidden(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(_NoToken)
    async def no_token(request: Request, exc: _NoToken) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(_TooMany)
    async def too_many(request: Request, exc: _TooMany) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429,
                            headers={"Retry-After": str(max(1, round(exc.wait)))})

    @app.get("/health", response_model=Health)
    def health() -> JSONResponse:
        stored = people is not None
        if state.service is not None:
            return JSONResponse({"status": "ready", "version": __version__, "models": list(state.service.models),
                                 "people": stored})
        status = "failed" if state.error is not None else "loading"
        return JSONResponse({"status": status, "version": __version__, "models": [], "people": stored,
                             "error": state.error}, status_code=503)

    @app.get("/v1/models", response_model=list[ModelInfo])
    def models() -> list[dict]:
        return svc().model_info()

    @app.get("/v1/users/{user_id}/recommendations", response_model=UserRecommendations)
    def user_recommendations(user_id: IdPath, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
                             model: str | None = None) -> dict:
        return svc().for_user(user_id, k, model)

    @app.post("/v1/recommendations", response_model=PersonRecommendations)
    def person_recommendations(body: RecommendationRequest) -> dict:
        return svc().for_person([(r.movie_id, r.rating) for r in body.ratings], body.k, body.model)

    @app.get("/v1/movies", response_model=list[Movie])
    def movies(q: Annotated[str, Query(min_length=1, max_length=200)],
               limit: Annotated[int, Query(ge=1, le=MAX_K)] = 10) -> list[dict]:
        return svc().search(q, limit)

    @app.get("/v1/movies/{movie_id}", response_model=Movie)
    def movie(movie_id: IdPath) -> dict:
        return svc().movie(movie_id)

    @app.get("/v1/movies/{movie_id}/similar", response_model=SimilarMovies)
    def similar(movie_id: IdPath, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
                by: Annotated[str, Query(pattern="^(content|model)$")] = "content",
                model: str | None = None) -> dict:
        return svc().similar(movie_id, k, by, model)

    @app.get("/v1/users/{user_id}/segment", response_model=Segment)
    def segment(user_id: IdPath, model: str | None = None) -> dict:
        return svc().segment(user_id, model)

    if people is not None:
        _people_routes(app, people, svc, ClientRateLimit(new_people_per_minute), ClientRateLimit(writes_per_minute))

    def reload(runs: list[str | Path] | None) -> bool:
        """Load ``runs`` (None: the same paths) in the background and swap them in; False if one is under way."""
        if not state.reloading.acquire(blocking=False):
            return False
        paths = list(runs) if runs is not None else list(state.paths)
        state.reload = {"status": "loading", "runs": [str(p) for p in paths], "error": None}

        def work() -> None:
            try:
                fresh = Service.open(paths, cache_users=cache_users, segments=segments)
                state.service, state.paths, state.error = fresh, paths, None  # one assignment: the swap
                state.ready.set()
                state.reload = {**state.reload, "status": "done"}
            except Exception as e:  # the served models stay
                message = str(e) if isinstance(e, MovieRecError) else f"{type(e).__name__}: {e}"
                state.reload = {**state.reload, "status": "failed", "error": message}
            finally:
                state.reloading.release()

        threading.Thread(target=work, name="movierec-reload", daemon=True).start()
        return True

    app.state.reload = reload
    _admin_routes(app, api_key, state, reload)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


class _Unavailable(Exception):
    """The models are not loaded (yet, or at all): HTTP 503."""


class _TooMany(Exception):
    """A client over its rate: HTTP 429 with Retry-After."""

    def __init__(self, what: str, wait: float) -> None:
        super().__init__(f"too many {what} from this client; try again in {max(1, round(wait))} s")
        self.wait = wait


class _NoToken(Exception):
    """No person's token given: HTTP 401."""


def _admin_routes(app: FastAPI, api_key: str | None, state: _State,
                  reload: Callable[[list[str | Path] | None], bool]) -> None:
    """/v1/admin/reload (POST: load and swap; GET: how the last one went), behind the admin key."""
    import hmac

    def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        if api_key is None:
            raise _Forbidden("the admin endpoints are off: start the server with --api-key-file")
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _NoToken("send the admin key: Authorization: Bearer <key> (the serve --api-key-file)")
        if not hmac.compare_digest(key.strip().encode(), api_key.encode()):
            raise _Forbidden("not the admin key")

    @app.post("/v1/admin/reload", response_model=ReloadStatus, status_code=202, dependencies=[Depends(admin)])
    def start_reload(body: ReloadRequest | None = None) -> dict:
        from movierec.serving.served import check_servable

        runs = body.runs if body is not None else None
        for run in runs or []:
            check_servable(run)  # 422 in one line before anything loads
        if not reload(runs):
            return JSONResponse({"detail": "a reload is under way; GET /v1/admin/reload says how it goes"},
                                status_code=409)
        return state.reload

    @app.get("/v1/admin/reload", response_model=ReloadStatus, dependencies=[Depends(admin)])
    def reload_status() -> dict:
        return state.reload


class _Forbidden(Exception):
    """A wrong key or token: HTTP 403."""


def _people_routes(app: FastAPI, people: PeopleStore, svc: Callable[[], Service], new_people: ClientRateLimit,
                   writes: ClientRateLimit) -> None:
    """The /v1/people endpoints (module docstring) over ``people``."""
    from datetime import UTC, datetime

    def client(request: Request) -> str:
        return request.client.host if request.client is not None else "unknown"

    def person(person_id: Annotated[int, PathParam(ge=1, le=(1 << 62))],
               authorization: Annotated[str | None, Header()] = None) -> int:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _NoToken("send the person's token: Authorization: Bearer <token> (POST /v1/people gives one)")
        people.check(person_id, token.strip())
        return person_id

    def write_allowed(request: Request) -> None:
        wait = writes.wait(client(request))
        if wait:
            raise _TooMany("rating writes", wait)

    def rated_out(r) -> dict:
        try:
            title = svc().movie(r.movie_id)["title"]
        except NotFound:
            title = None
        at = datetime.fromtimestamp(r.rated_ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")
        return {"movie_id": r.movie_id, "title": title, "rating": r.rating, "rated_at": at}

    @app.post("/v1/people", response_model=NewPerson, status_code=201)
    def new_person(request: Request) -> dict:
        wait = new_people.wait(client(request))
        if wait:
            raise _TooMany("new people", wait)
        person_id, token = people.new_person()
        return {"person_id": person_id, "token": token}

    @app.put("/v1/people/{person_id}/ratings/{movie_id}", response_model=StoredRatingOut,
             dependencies=[Depends(write_allowed)])
    def put_rating(movie_id: IdPath, body: RatingValue, pid: int = Depends(person)) -> dict:
        service = svc()
        movie = service.movie(movie_id)  # 404 for a movie no served model has
        service.model(None).check_ratings(np.array([body.rating]))  # 422 off the scale
        return rated_out(people.put_rating(pid, movie["movie_id"], body.rating))

    @app.delete("/v1/people/{person_id}/ratings/{movie_id}", status_code=204, dependencies=[Depends(write_allowed)])
    def delete_rating(movie_id: IdPath, pid: int = Depends(person)) -> Response:
        key = svc().key(movie_id)
        if key is None or not people.delete_rating(pid, key):
            raise NotFound(f"person {pid} has not rated movie {shown_id(movie_id)}")
        return Response(status_code=204)

    @app.get("/v1/people/{person_id}/ratings", response_model=PersonRatings)
    def get_ratings(pid: int = Depends(person)) -> dict:
        return {"person_id": pid, "ratings": [rated_out(r) for r in people.ratings_of(pid)]}

    @app.get("/v1/people/{person_id}/recommendations", response_model=StoredPersonRecommendations)
    def stored_recommendations(pid: int = Depends(person), k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
                               model: str | None = None) -> dict:
        rated = people.ratings_of(pid)
        if not rated:
            raise MovieRecError(f"person {pid} has rated no movie yet: PUT /v1/people/{pid}/ratings/MOVIE_ID")
        return {"person_id": pid, **svc().for_stored(pid, rated, k, model)}


def docs_assets() -> Path | None:
    """The folder of Swagger UI's and ReDoc's files in the fastapi-offline package (the serve extra installs it),
    or None without it (FastAPI's own pages are served then, which load those files from a CDN)."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    needed = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
    return folder if all((folder / name).is_file() for name in needed) else None


def _offline_docs(app: FastAPI, assets: Path) -> None:
    """/docs (Swagger UI) and /redoc with their files served by the app itself: the pages work offline."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html

    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs")

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")  # behind a proxy that mounts the app under a path
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # no badge from the internet

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}/openapi.json", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False)


def _one_line(errors: list[dict]) -> str:
    """FastAPI's validation errors as one line: ``body.ratings.0.rating: Input should be a valid number``; a list
    over its limit says the limit: ``ratings: at most 1000 per request (got 1001)``."""
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        ctx = e.get("ctx") or {}
        if e.get("type") == "too_long" and isinstance(e.get("input"), list) and "max_length" in ctx:
            msg = f"at most {ctx['max_length']} per request (got {len(e['input'])})"
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def serve(paths: list[str | Path], host: str = "127.0.0.1", port: int = 8000, cache_users: int = 50_000,
          access_log: bool = False, on_start: Callable[[], None] | None = None,
          segments: str | Path | None = None, limits: Limits | None = None, people: PeopleStore | None = None,
          api_key: str | None = None) -> None:
    """Run the app on uvicorn (one worker) until interrupted, with ``limits`` (default: those of
    :mod:`movierec.serving.limits`: 1 MiB bodies, 10 s to send a request, 1,000 connections, 5 s keep-alive)
    and the store of ``people`` (None: stateless). SIGHUP reloads the served folders and swaps them in (as
    ``POST /v1/admin/reload`` does, which needs ``api_key``)."""
    import os
    import signal

    import uvicorn

    from movierec.serving.limits import uvicorn_settings

    limits = limits or Limits()
    app = create_app(paths, cache_users=cache_users, one_thread_per_request=True, segments=segments,
                     threads=int(os.environ.get("MOVIEREC_SERVE_THREADS", 0)) or os.cpu_count() or 1,
                     max_body=limits.max_body, people=people, api_key=api_key)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: app.state.reload(None))
    if on_start is not None:
        on_start()
    uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info", lifespan="on",
                **uvicorn_settings(limits))
