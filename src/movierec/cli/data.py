"""``movierec data list|fetch|import|info|synth`` and ``movierec split``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from movierec.cli.common import DataOpt, JsonOpt, OldDataArg, console, dataset_arg, kv_table, print_json
from movierec.errors import MovieRecError


def data_list(as_json: JsonOpt = False) -> None:
    """The MovieLens releases movierec knows, where each is found on this machine, and what that copy holds.

    Examples: movierec data list; movierec data list --json
    """
    from movierec.data import list_releases

    rows = list_releases()
    if as_json:
        print_json(rows)
        return
    t = Table("name", "description", "size", "status")
    t.add_column("local copy", overflow="fold")
    for r in rows:
        t.add_row(str(r.get("name")), str(r.get("description", "")), str(r.get("size", "")),
                  str(r.get("status", "")), str(r.get("path") or r.get("location") or "-"))
    console.print(t)


def data_fetch(name: str) -> None:
    """Download a release, verify its checksum and extract it into the cache (ratings and movies files).

    Examples: movierec data fetch ml-1m; movierec data fetch ml-latest-small
    """
    from movierec.data import fetch
    from movierec.data.releases import folder_status

    path = fetch(name, progress=True)
    st = folder_status(path)
    if st["status"] != "complete":  # fetch checks this itself; never claim success without the ratings
        raise MovieRecError(f"{name}: {path} is {st['status']}: missing {', '.join(st['missing']) or 'files'}")
    console.print(f"{name}: {path} (complete)")


def data_import(
    path: Annotated[Path, typer.Argument(help="A MovieLens folder (any layout, or NCF split files), or a CSV / "
                                              "Parquet file of your own interactions (then --user, --item, --name).",
                                         show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="The name to load it by: up to 64 letters, digits, "
                                                            "'.', '_' and '-' (a folder: default its name).")] = None,
    items: Annotated[Path | None, typer.Option("--items", help="Own data: a CSV / Parquet file of items "
                                                               "(--item-id, --title, --genres).")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Own data: the column of user ids.")] = None,
    item: Annotated[str | None, typer.Option("--item", help="Own data: the column of item ids.")] = None,
    rating: Annotated[str | None, typer.Option("--rating", help="Own data: the column of ratings (0.5-5); "
                                                                "without it the data is implicit.")] = None,
    timestamp: Annotated[str | None, typer.Option("--timestamp", help="Own data: the column of times (unix "
                                                                      "seconds or ISO dates).")] = None,
    sep: Annotated[str, typer.Option("--sep", help="Own data: the CSV field separator.")] = ",",
    item_id: Annotated[str | None, typer.Option("--item-id", help="The items file's id column (default: the "
                                                                  "--item name).")] = None,
    title: Annotated[str | None, typer.Option("--title", help="The items file's title column.")] = None,
    genres: Annotated[str | None, typer.Option("--genres", help="The items file's genres column.")] = None,
    genre_sep: Annotated[str, typer.Option("--genre-sep", help="Separator of the genres in --genres.")] = "|",
    force: Annotated[bool, typer.Option("--force", help="Own data: replace an import of the same --name from other "
                                                        "files or columns.")] = False,
) -> None:
    """Register an extracted folder (any MovieLens layout, or NCF-format split files) under a name, or import your
    own interactions from a CSV or Parquet file.

    The files are parsed and validated first (and cached); a bad file is reported now, naming its file and
    line, and nothing is registered. A folder with movies but no ratings imports as catalogue only.

    Own data: movierec data import events.csv --user customer --item sku [--rating stars] [--timestamp time]
    [--items products.csv --item-id sku --title name --genres category --genre-sep ";"] --name shop

    Examples: movierec data import ~/Downloads/ml-25m; movierec data import events.csv --user customer --item sku
    --name shop
    """
    from movierec.data import import_folder, load_catalog, load_dataset
    from movierec.data.releases import LAYOUTS, folder_status

    own = {"--items": items, "--user": user, "--item": item, "--rating": rating, "--timestamp": timestamp,
           "--item-id": item_id, "--title": title, "--genres": genres}
    if path.is_file() or (not path.exists() and any(v is not None for v in own.values())):
        _import_own_file(path, name, own, sep, genre_sep, force)
        return
    given = [k for k, v in own.items() if v is not None] + (["--force"] if force else [])
    if given:
        raise MovieRecError(f"{' and '.join(given)} go with a file of your own interactions; {path} is a folder")
    folder, layout, name = _folder_import_name(path, name)
    _hold_name(name)
    # parse, validate and cache now (a bad file is reported here, naming file and line; nothing is registered)
    if layout == "ncf" or (folder / LAYOUTS[layout]["ratings"].filename).is_file():
        load_dataset(folder, fetch_missing=False)
    else:
        load_catalog(folder, fetch_missing=False)
    registered = import_folder(folder, name)
    st = folder_status(folder, layout)
    note = "" if st["status"] == "complete" else f": {st['status'].split(' (')[0]}, no {' or '.join(st['missing'])}"
    console.print(f"imported {path} as {registered}{note}")


def data_info(name_or_path: OldDataArg = None, data: DataOpt = None, as_json: JsonOpt = False) -> None:
    """Size and contents of a dataset.

    Examples: movierec data info --data ml-latest-small; movierec data info --data shop --json
    """
    from movierec.data import load_dataset

    name_or_path = dataset_arg(name_or_path, data, "data info")
    info = load_dataset(name_or_path).info()
    if as_json:
        print_json(info)
    else:
        console.print(kv_table(name_or_path, info))


def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write ratings.csv, movies.csv, tags.csv.")],
    users: Annotated[int, typer.Option("--users")] = 1000,
    items: Annotated[int, typer.Option("--items")] = 2000,
    ratings: Annotated[int, typer.Option("--ratings")] = 100_000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write a synthetic dataset in ml-20m's csv format (power-law users and items).

    Examples: movierec data synth --out /tmp/syn; movierec data synth --users 138493 --items 26744 --ratings
    20000263 --out /tmp/synth20m
    """
    from movierec.data.synthetic import write_synthetic

    if min(users, items, ratings) <= 0:
        raise MovieRecError("--users, --items and --ratings must be positive")
    path = write_synthetic(out, users, items, ratings, seed=seed)
    console.print(f"wrote {path}")


def split_cmd(
    name_or_path: OldDataArg = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for NCF-format files and Parquet tables.",
                                             show_default=False)] = None,
    data: DataOpt = None,
    protocol: Annotated[str, typer.Option("--protocol", help="loo or vae-cf")] = "loo",
    seed: Annotated[int, typer.Option("--seed")] = 42,
    as_json: JsonOpt = False,
) -> None:
    """Split a dataset; write NCF-format files (loo) and Parquet tables with raw ids.

    Examples: movierec split --data ml-latest-small --out splits/mls; movierec split --data ml-1m --protocol
    vae-cf --out splits/vae
    """
    from movierec.data import load_dataset
    from movierec.data.splits import export_ncf, make_split, write_split_parquet
    from movierec.fsutil import claim_output, mark_output

    name_or_path = dataset_arg(name_or_path, data, "split")
    if out is None:
        raise MovieRecError("split: missing option --out (the folder to write)")

    if protocol not in ("loo", "vae-cf", "cold-items"):
        raise MovieRecError(f"--protocol: unknown split protocol {protocol!r} (expected loo, vae-cf or cold-items)")
    claim_output(out, "split", create=False)
    ds = load_dataset(name_or_path)
    try:
        split = make_split(ds, protocol, seed)
    except ValueError as e:
        raise MovieRecError(str(e)) from None
    mark_output(out, "split")
    files = write_split_parquet(split, out, ds.users, ds.items)
    if split.test.negatives is not None:
        files += export_ncf(split, out, ds.name)
    split.save(out / "split")
    summary = {**split.summary(), "files": [str(f) for f in files]}
    if as_json:
        print_json(summary)
    else:
        console.print(kv_table(f"{ds.name} · {protocol} split", {k: v for k, v in summary.items() if k != "files"}))
        for f in files:
            console.print(f"  {f}")


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def cache_list(as_json: JsonOpt = False) -> None:
    """The cache's parsed tables (fresh or stale, size, days since last used) and downloaded releases.

    Examples: movierec data cache list; movierec data cache clear --older-than 30
    """
    from movierec.data.cache import cache_dir, cache_entries

    entries = cache_entries()
    if as_json:
        print_json({"path": str(cache_dir()), "entries": entries})
        return
    total = sum(e["size_bytes"] for e in entries)
    t = Table("kind", "name", "status", "size", "last used", title=f"cache {cache_dir()} · {_mb(total)}",
              title_justify="left")
    for e in entries:
        t.add_row(e["kind"], escape(e["name"]), escape(e["status"]), _mb(e["size_bytes"]), f"{e['age_days']} days ago")
    console.print(t)
    if not entries:
        console.print("the cache is empty")
    elif any(e["status"].startswith("stale") for e in entries):
        console.print("`movierec data cache clear` removes the stale entries")


def cache_clear(
    older_than: Annotated[float | None, typer.Option(
        "--older-than", help="Also remove parsed tables not used for this many days.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Remove every parsed table (downloads stay).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove stale parsed tables (their source changed or is gone, or an older format), and with --older-than
    DAYS those not used for that long. Downloaded releases are never removed: delete their folders by hand.

    Examples: movierec data cache clear; movierec data cache clear --older-than 30; movierec data cache clear --all
    """
    from movierec.data.cache import clear_entries

    if older_than is not None and older_than < 0:
        raise MovieRecError("--older-than must be at least 0 days")
    removed = clear_entries(older_than, everything)
    freed = sum(e["size_bytes"] for e in removed)
    if as_json:
        print_json({"removed": removed, "freed_bytes": freed})
        return
    for e in removed:
        console.print(f"removed {e['kind']} {escape(e['name'])} ({escape(e['status'])}, {_mb(e['size_bytes'])})")
    console.print(f"{len(removed)} entr{'y' if len(removed) == 1 else 'ies'} removed, {_mb(freed)} freed")


def _import_own_file(path: Path, name: str | None, own: dict, sep: str, genre_sep: str, force: bool) -> None:
    """`movierec data import FILE --user COL --item COL ... --name NAME`: own interactions, written as a
    MovieLens folder in the cache (:func:`movierec.data.own.import_interactions`), loaded once and registered."""
    from movierec.data import import_folder, load_dataset
    from movierec.data.own import OwnColumns, import_interactions, validate_dataset_name

    missing = [o for o, v in (("--user COL", own["--user"]), ("--item COL", own["--item"]), ("--name NAME", name))
               if v is None]
    if missing:
        raise MovieRecError(f"importing the file {path} needs {', '.join(missing)}")
    items_only = [k for k in ("--item-id", "--title", "--genres") if own[k] is not None]
    if items_only and own["--items"] is None:
        raise MovieRecError(f"{' and '.join(items_only)} go with --items FILE")
    validate_dataset_name(name)
    _hold_name(name)
    columns = OwnColumns(own["--user"], own["--item"], own["--rating"], own["--timestamp"], own["--item-id"],
                         own["--title"], own["--genres"])
    folder, info = import_interactions(path, name, columns, items_path=own["--items"], sep=sep, genre_sep=genre_sep,
                                       force=force)
    load_dataset(folder, fetch_missing=False)  # parse, validate and cache now
    registered = import_folder(folder, name)
    extra = [f"{info['duplicates_dropped']:,} repeated (user, item) rows dropped, the latest of each kept"
             if info["duplicates_dropped"] else "",
             "implicit (no ratings)" if info["implicit"] else "", "" if info["has_timestamps"] else "no timestamps"]
    note = "; ".join(e for e in extra if e)
    console.print(f"imported {path} as {registered}: {info['rows_kept']:,} interactions of {info['users']:,} users "
                  f"and {info['items']:,} items" + (f" ({note})" if note else ""), markup=False)


def _hold_name(name: str) -> None:
    """Import under ``name`` alone: a second import of the same name while this one runs refuses in one line
    (both would write it, and one would be lost)."""
    from movierec.data.own import imported_root
    from movierec.fsutil import hold_lock

    hold_lock(imported_root() / name, "--name", shown=name)


def _folder_import_name(path: Path, name: str | None) -> tuple[Path, str, str]:
    """(folder, layout, name) of a folder import, its name checked before anything is parsed or registered: --name
    as given, else the folder's own name (:func:`movierec.data.own.validate_dataset_name`; a release's name is
    allowed: it registers a copy of that release)."""
    from movierec.data.own import validate_dataset_name
    from movierec.data.releases import import_target

    if name is not None:
        validate_dataset_name(name, own=False)
    folder, layout, name = import_target(path, name)
    validate_dataset_name(name, own=False, option=f"{folder}: the folder's name", hint="; pass --name NAME")
    return folder, layout, name
