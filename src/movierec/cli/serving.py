"""``movierec recommend`` (a known user, a new person, every user) and ``movierec serve`` (HTTP and a web page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from movierec.cli.common import JsonOpt, console, print_json
from movierec.errors import MovieRecError

RunArg = Annotated[Path, typer.Argument(help="A run folder (movierec train), a model bundle, or a study folder "
                                             "(its best final model).", show_default=False)]


def recommend_cmd(
    run_dir: RunArg,
    user: Annotated[str | None, typer.Option("--user", help="A known user's id (own data imported with string ids: "
                                                            "the original id).")] = None,
    rate: Annotated[list[str] | None, typer.Option(
        "--rate", help='A new person\'s rating "TITLE=RATING" or "MOVIEID=RATING" (repeatable; in the order '
        'watched, which sequential models read as the session). Own data imported with string ids: the item\'s '
        'own id ("SKU-50=5"; an id is matched before a title).')] = None,
    users: Annotated[str | None, typer.Option(
        "--users", help="all, or a file of user ids (one per line, or a CSV with a userId column): "
        "recommendations for every one of them, written to --out.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="With --users: the table to write (.parquet or .csv): "
                                                           "user, rank, movie, score (the users' and movies' own "
                                                           "ids).")] = None,
    force: Annotated[bool, typer.Option("--force", help="With --users: replace --out if it exists.")] = False,
    k: Annotated[int, typer.Option("-k", help="Movies per list.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Top-k movies for a known user (--user), a new person (--rate ...), or many users (--users ... --out).

    Never recommends a movie the person is known to have rated: for a known user the training ratings in the
    bundle and, when RUN is a run folder with a split/ (as `movierec train` writes) or a study, the user's
    held-out validation and test movies (and the fold-in movies of a vae-cf split) too; for a new person the
    rated movies. Each movie comes with a reason where the model has one ("because you rated ...").

    Examples: movierec recommend out/run --user 1; movierec recommend out/run --rate "Toy Story (1995)=5"
    --rate "Heat (1995)=4"; movierec recommend out/run --users all --out recs.parquet
    """
    modes = [m for m, given in (("--user", user is not None), ("--rate", bool(rate)), ("--users", users is not None))
             if given]
    if len(modes) != 1:
        raise MovieRecError("give one of --user ID, --rate TITLE=RATING (repeatable) or --users all|FILE"
                            + (f" (got {' and '.join(modes)})" if modes else ""))
    if k < 1:
        raise MovieRecError("-k must be at least 1")
    if users is not None:
        _recommend_many(run_dir, users, out, force, k, as_json)
        return
    if out is not None:
        raise MovieRecError("--out goes with --users (a table for many users)")
    from movierec.runs.folders import check_cutoffs
    from movierec.serving import Service
    from movierec.serving.service import user_index

    service = Service.open([run_dir], cache_users=0, warm=False, max_k=None)
    served = service.model(None)
    check_cutoffs((k,), served.model.n_items, "movies of the run's catalogue")
    if user is not None:
        user_index(served, user)  # an unknown id fails here with the data layer's one line
        result = service.for_user(user, k)
        shown = result["user_id"]
        title = f"{served.model_name} · user {shown}"
    else:
        ratings = [_parse_rating(service, text) for text in rate or []]
        result = service.for_person(ratings, k)
        title = f"{served.model_name} · {len(ratings)} rated movie(s)"
        if result["ignored"]:
            console.print(f"the model does not know movie id(s) {', '.join(map(str, result['ignored']))}; "
                          "recommending from the others", markup=False)
    rows = [{"rank": r["rank"], "movieId": r["movie_id"], "title": r["title"], "genres": r["genres"],
             "score": r["score"], "reason": r["reason"]} for r in result["recommendations"]]
    if as_json:
        head = {"user": shown} if user is not None else {"ratings": [{"movieId": m, "rating": v} for m, v in ratings]}
        print_json({**head, "model": served.model_name, "recommendations": rows})
        return
    t = Table("rank", "movieId", "title", "score", "why", title=escape(title))
    for r in rows:
        t.add_row(str(r["rank"]), str(r["movieId"]), escape(str(r["title"])), f"{r['score']:.4g}",
                  escape(r["reason"] or ""))
    console.print(t)


def _parse_rating(service, text: str) -> tuple[int | str, float]:
    """'Toy Story (1995)=5' -> (1, 5.0); 'SKU-50=5' -> ('SKU-50', 5.0) for own string ids: the movie's id first,
    else its title matched as `movierec similar` matches it."""
    title, sep, value = text.rpartition("=")
    if not sep or not title.strip():
        raise MovieRecError(f"--rate {text!r}: write TITLE=RATING or MOVIEID=RATING, e.g. \"Toy Story (1995)=5\"")
    try:
        rating = float(value)
    except ValueError:
        raise MovieRecError(f"--rate {text!r}: the rating {value.strip()!r} is not a number") from None
    if not np.isfinite(rating):
        raise MovieRecError(f"--rate {text!r}: the rating must be a finite number")
    try:
        return service.resolve(title.strip()), rating
    except MovieRecError as e:
        raise MovieRecError(f"--rate {text!r}: {e}") from None


def _recommend_many(run_dir: Path, users: str, out: Path | None, force: bool, k: int, as_json: bool) -> None:
    import time

    from movierec.fsutil import atomic_write_parquet, atomic_write_text, csv_text, hold_lock
    from movierec.runs.folders import check_cutoffs
    from movierec.serving import ServedModel
    from movierec.serving.batch import read_user_values, recommend_users_table, user_ids_of_values

    if out is None:
        raise MovieRecError("--users needs --out FILE (.parquet or .csv) for the table")
    if out.suffix not in (".parquet", ".csv"):
        raise MovieRecError(f"--out {out}: name a .parquet or .csv file")
    if out.is_dir():
        raise MovieRecError(f"--out {out}: is a folder; name a .parquet or .csv file")
    hold_lock(out)  # one writer: a second command writing the same file refuses while this one runs
    if out.exists() and not force:
        raise MovieRecError(f"--out {out}: already exists; pass --force to replace it")
    if not out.parent.exists():
        raise MovieRecError(f"--out {out}: the folder {out.parent} does not exist")
    # text first; checked against the bundle's ids (its own string ids, or integers) once it is open
    values = None if users == "all" else read_user_values(users, labels=True)
    served = ServedModel.open(run_dir)
    raw = None if values is None else user_ids_of_values(served, values, users)
    check_cutoffs((k,), served.model.n_items, "movies of the run's catalogue")
    t0 = time.perf_counter()
    table = recommend_users_table(served, raw, k)
    seconds = time.perf_counter() - t0
    if out.suffix == ".parquet":
        atomic_write_parquet(out, table)
    else:
        atomic_write_text(out, csv_text(table))
    n_users = int(table["user"].nunique())
    if as_json:
        print_json({"model": served.model_name, "users": n_users, "rows": len(table), "k": k, "out": str(out),
                     "seconds": round(seconds, 3)})
        return
    console.print(f"{served.model_name}: top {k} for {n_users:,} users in {seconds:.2f} s → {out} "
                  f"({len(table):,} rows: user, rank, movie, score)", markup=False)


def serve_cmd(
    runs: Annotated[list[Path], typer.Argument(
        help="Run folders, model bundles or study folders to serve (each study: its final models, fitted on every "
        "rating).", show_default=False)],
    host: Annotated[str, typer.Option(
        "--host", help="Address to bind; 0.0.0.0 exposes it to the network (then --api-key-file is needed).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8000,
    cache_users: Annotated[int, typer.Option(
        "--cache-users", help="Known users whose lists each model keeps in memory (0: score every request).")]
    = 50_000,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
    segments: Annotated[Path | None, typer.Option(
        "--segments", help="A `movierec segments --out` folder: GET /v1/users/{id}/segment answers from it "
        "(a study folder's own segments are used without it).")] = None,
    db: Annotated[str | None, typer.Option(
        "--db", help="Store people and their ratings: a SQLite file's path, `default` (people.sqlite in movierec's "
        "data folder, $MOVIEREC_HOME), or a database URL (postgresql+psycopg://USER@HOST/DB). Without it the "
        "server keeps nothing.", show_default=False)] = None,
    api_key_file: Annotated[Path | None, typer.Option(
        "--api-key-file", help="A file holding the admin key (16 or more characters) that POST /v1/admin/reload "
        "asks for; needed to bind an address other than this machine's loopback.", show_default=False)] = None,
) -> None:
    """Serve models over HTTP with a web page: rate a few movies, get each model's recommendations.

    The page is at http://HOST:PORT/, the API's documentation at /docs and /redoc (served offline). The models
    load in the background; GET /health says when they are ready. Nothing is written to the folders served.
    With --db, people get an id and a secret token (POST /v1/people) and their ratings are kept: the page
    remembers its person across reloads, and GET /v1/people/ID/recommendations reads the stored ratings.
    New runs are swapped in without dropping a request: POST /v1/admin/reload {"runs": [...]} (with the key
    of --api-key-file), or SIGHUP to load the same folders again.
    Limits: a request body of at most 1 MiB (413), 1,000 ratings per request (422), 10 s to send a request
    (slow and half-open connections are closed), at most 1,000 connections open at once (503 beyond).

    Examples: movierec serve out/study-ml-latest-small --db default; movierec serve runs/knn runs/neumf --port 8080
    """
    from movierec._optional import require
    from movierec.serving.served import check_segments_folder, check_servable

    require("fastapi")
    require("uvicorn")
    if not 0 < port < 65536:
        raise MovieRecError(f"--port {port}: must be between 1 and 65535")
    if cache_users < 0:
        raise MovieRecError("--cache-users must be at least 0")
    for run in runs:
        check_servable(run)
    if segments is not None:
        check_segments_folder(segments)
    api_key = _read_api_key(api_key_file) if api_key_file is not None else None
    if api_key is None and not _is_loopback(host):
        raise MovieRecError(f"--host {host}: reachable from other machines; give --api-key-file (the admin key) "
                            "or bind 127.0.0.1")
    _check_port(host, port)
    people = _open_people(db, runs) if db is not None else None
    from movierec.serving.api import serve

    def started() -> None:
        print(f"serving {len(runs)} model folder(s) at http://{host}:{port}/ (API docs: /docs); Ctrl-C stops",
              flush=True)

    serve(runs, host=host, port=port, cache_users=cache_users, access_log=access_log, on_start=started,
          segments=segments, people=people, api_key=api_key)


def _read_api_key(path: Path) -> str:
    """The admin key in ``path`` (surrounding whitespace dropped): refused unless it has 16 or more characters."""
    from movierec.errors import DataError

    try:
        key = path.expanduser().read_text().strip()
    except FileNotFoundError:
        raise DataError("not found", path) from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as e:
        raise DataError(f"cannot be read as a key ({type(e).__name__})", path) from None
    if len(key) < 16 or any(c.isspace() for c in key):
        raise DataError("the admin key must be 16 or more characters, with no spaces", path)
    return key


def _is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress
    import socket

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except (socket.gaierror, ValueError):
            return False


def _open_people(db: str, runs: list[Path]):
    """The store of people at ``--db``, checked before anything loads: never a file inside a served folder."""
    from movierec._optional import require
    from movierec.fsutil import data_home
    from movierec.serving.people import PeopleStore, database_url, sqlite_path

    require("sqlalchemy")
    url = database_url(db, data_home())
    path = sqlite_path(url)
    if path is not None:
        for run in runs:
            folder = run.expanduser().resolve()
            if path == folder or folder in path.parents:
                raise MovieRecError(f"--db {path}: inside the served folder {run}; a served run is never written, "
                                    "keep the database elsewhere")
    store = PeopleStore(url)
    print(f"people and their ratings are stored in {path or store.shown_url()}", flush=True)
    return store


def _check_port(host: str, port: int) -> None:
    """Refuse, before anything loads, an address that cannot be bound (in use, or not this machine's)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise MovieRecError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            raise MovieRecError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror}); choose another "
                                "port or stop what uses it") from None


def refresh_cmd(
    run: Annotated[Path, typer.Argument(help="A served run folder or bundle (a study's final model: "
                                             "STUDY/final/NAME).", show_default=False)],
    db: Annotated[str, typer.Option("--db", help="The database `movierec serve --db` stores people in (a SQLite "
                                                 "file, `default`, or a URL).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The new run folder.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace --out if an earlier movierec run wrote it.")]
    = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
) -> None:
    """Train RUN's model again as a final run on RUN's data plus every stored rating: people become users.

    The settings and validation choices are RUN's (as `train --final --like RUN`); a person's user id is the
    data's largest user id plus the person's id (people.json in --out maps them). Serve the new run, or swap it
    in: POST /v1/admin/reload {"runs": ["OUT"]}.

    Examples: movierec refresh runs/knn-final --db default --out runs/knn-refreshed
    """
    import json
    import time

    from movierec._optional import require
    from movierec.data import load_dataset
    from movierec.fsutil import atomic_write_text, data_home
    from movierec.runs.folders import check_device, claim_run, like_settings, train_run
    from movierec.serving.people import PeopleStore, database_url
    from movierec.serving.refresh import PEOPLE_FILE, people_record, run_dataset, with_people

    require("sqlalchemy")
    check_device(device)
    run = run.expanduser()
    model, recorded = run_dataset(run)
    settings = like_settings(run, model)
    store = PeopleStore(database_url(db, data_home()))
    claim_run(out, force=force)
    t0 = time.perf_counter()
    source = recorded.get("source")
    dataset = load_dataset(source if source and Path(source).exists() else recorded["name"])
    then = (recorded.get("users"), recorded.get("items"))
    if recorded.get("fingerprint") and recorded["fingerprint"] != dataset.fingerprint():
        raise MovieRecError(f"{run}: the ratings of {recorded['name']} have changed since the run was trained "
                            "(its content fingerprint differs); refresh needs the data the run was trained on")
    if None not in then and then != (dataset.n_users, dataset.n_items):
        raise MovieRecError(f"{run}: trained on {then[0]:,} users and {then[1]:,} movies of {recorded['name']}, but "
                            f"that data set has {dataset.n_users:,} and {dataset.n_items:,} now; refresh needs the "
                            "data the run was trained on")
    stored = store.all_ratings()
    merged, added = with_people(dataset, stored)
    print(f"refresh {model}: {added.people:,} people with {added.ratings:,} ratings join {dataset.name}'s "
          f"{dataset.n_users:,} users" + (f" ({added.unknown_movies:,} ratings of movies it lacks left out)"
                                         if added.unknown_movies else ""), flush=True)
    train_run(model, merged, out, settings, final=True, device=device)
    record = people_record(stored, added.offset, merged.users.ids)
    atomic_write_text(out / PEOPLE_FILE, json.dumps(record, indent=1) + "\n")
    print(f"done in {time.perf_counter() - t0:.1f} s -> {out}", flush=True)
