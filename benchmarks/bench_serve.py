"""Load test of the HTTP API of ``movierec serve``: throughput, latency, errors and server memory.

Each served configuration (one model bundle) runs as its own server process (uvicorn, ONE worker) on
127.0.0.1, started with :func:`movierec.serving.api.serve`. Once ``/health`` is 200, a client keeps a bounded
number of requests in flight (``--concurrency``, default 8) for ``--warmup`` seconds (not counted) and then
``--duration`` seconds (measured). The client (``--client``) is ``wrk`` (C; the default when it is on PATH: it
is light enough not to be the bottleneck on 2 cores; one unmeasured run, then the measured one, driven by
generated Lua scripts) or ``httpx`` (Python asyncio client processes; on 2 cores it uses ~1 core at ~450 req/s
and its event loop inflates tail latency). Endpoints:

- ``user``: GET /v1/users/{id}/recommendations?k=10 -- ids drawn uniformly (seeded) from every user of the
  bundle, once with the per-user list cache (cache_users=50000: a user seen before is a cache hit) and once
  from a server started with cache_users=0 (every request scored; the honest cost of a cold user);
- ``person``: POST /v1/recommendations -- 3-10 random ratings (half stars) of the bundle's 200 most rated
  movies (seeded), folded in per request.

Reported per run: requests/s, latency p50/p90/p99/max (ms), errors (any non-200 or transport error), the
server's RSS (VmRSS, sampled every second: start, max, end, to show memory is flat), the server's CPU
(cores used over the measured window; one worker is bound near 1 core by the GIL) and the client's CPU
(a client near 100% of a core is itself the bottleneck: the table says so; add ``--clients 2``: two httpx
processes, or two wrk threads).

``--rate R`` (httpx): an open loop instead of the closed one. The clients send R requests/s between them at
fixed times, whatever the answers take, and each latency counts from when its request was due, so a server that
falls behind shows it in its p99 (no coordinated omission). This measures "at R requests/s, p99 under X ms".
The closed loop measures the most a server answers at a given number in flight; its latency there is that
number over the throughput (8 in flight at 250 req/s: 32 ms each, whatever the server's own time).

Served bundles (trained once, cached under /tmp/movierec-bench/serve; ``--fresh`` retrains):

- ml-latest-small (610 users, 9,724 movies): ItemKNN and NeuMF (defaults; ``--epochs`` to shorten);
- synthetic data with ml-20m's catalogue size (20,000 users, 26,744 movies, 2M ratings): ItemKNN and GMF
  (3 epochs).

    python benchmarks/bench_serve.py                  # everything: ~6 min of load once trained (training
                                                      # from scratch adds ~5-10 min on 2 cores)
    python benchmarks/bench_serve.py --quick          # smoke run: ml-latest-small, NeuMF 1 epoch, 3 s per run
    python benchmarks/bench_serve.py --quick --client httpx   # the Python client instead of wrk
    python benchmarks/bench_serve.py --only synth-itemknn --endpoints user,user-nocache --duration 10
    python benchmarks/bench_serve.py --server-env OPENBLAS_NUM_THREADS=1   # diagnosis: servers' environment
    python benchmarks/bench_serve.py --hostile       # the server under abuse (below): ~1 min once trained

``--hostile``: one server (small-itemknn unless ``--only`` names others) with the limits of ``movierec serve``
(:mod:`movierec.serving.limits`), first with the normal clients alone (known users, ``--concurrency`` 8 in
flight), then with them beside a hostile client process on 127.0.0.1 that, for a bounded time, keeps
``--slow`` connections open (half of them half-open: connect and send nothing; half slowloris: a request head
that grows by one header a second), ``--big`` clients that send 60 MB bodies in a loop (half declared by
Content-Length, half chunked) and one whose request head never ends; each reconnects when the server closes it.
The normal clients are two httpx processes by default here (one process near a full core of its own event loop
put ~95 ms into its p99 with or without the hostile clients). Reported: the normal clients' p99 (target under
100 ms) and errors, the server's RSS growth over the hostile phase (target within 300 MB of its start) and its
open file descriptors, the CPU of server and clients, and what the hostile clients met: how long the server
held a slow connection, and the statuses it answered (408, 413, 431, 503; "reset": the server closed while the
client was still sending, so its answer was lost).

``--reload``: per configuration, one server started with an admin key; during each measured run (known users,
then new people) the benchmark asks ``POST /v1/admin/reload`` (the same folder, loaded anew) at the middle of
the window and waits for it: the run's errors say whether any request failed across the swap, its p99 what the
load cost the others; the reload's seconds are reported.

Results: benchmarks/results/bench_serve.json (bench_serve_quick.json with --quick, bench_serve_hostile.json with
--hostile, bench_serve_reload.json with --reload, or --out FILE). On a busy machine req/s and latency drop;
"server CPU ms/req" (server CPU time over answered requests) stays comparable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util as U

WORK = U.DATA_ROOT / "serve"
SYNTH_SHAPE = (20_000, 26_744, 2_000_000)  # users, movies (ml-20m's catalogue), ratings
SYNTH_GMF_EPOCHS = 3
POPULAR = 200  # new people rate among the bundle's most rated movies
CLIENT_BOUND = 0.85  # client CPU (fraction of one core) above which the client is the bottleneck
TICK = os.sysconf("SC_CLK_TCK")
CLIENT_PROCESS = "--client-process"  # internal: argv[1] of an httpx client process (argv[2]: its JSON config)
HOSTILE_PROCESS = "--hostile-process"  # internal: argv[1] of the hostile client process (argv[2]: its JSON config)
HOSTILE_P99_MS = 100.0  # the normal clients' p99 under abuse must stay below this
HOSTILE_RSS_MB = 300.0  # and the server's RSS within this of its start
BIG_BODY = 60_000_000  # bytes an oversized-body client offers per request


# ------------------------------------------------------------------------------------------- preparation


def _train(name: str, model: str, data: Path, settings: list[str], fresh: bool) -> tuple[Path, float | None]:
    """Run folder of ``movierec train model --data data``; trained once and re-used. (folder, seconds|None)"""
    tag = "-".join(s.replace("=", "") for s in settings)
    out = WORK / "runs" / (f"{name}-{tag}" if tag else name)
    if (out / "COMPLETE").is_file() and not fresh:
        return out, None
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).with_name("movierec")), "train", model, "--data", str(data), "--out", str(tmp),
           "--device", "cpu"]
    for s in settings:
        cmd += ["--set", s]
    print(f"[prepare] training {model} on {data.name} {' '.join(settings)} ...", flush=True)
    env = {**os.environ, "MOVIEREC_CACHE_DIR": str(WORK / "parse-cache")}
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"training {model} failed (rc {p.returncode}):\n{p.stderr[-3000:]}")
    seconds = time.perf_counter() - t0
    (tmp / "COMPLETE").write_text("ok\n")
    tmp.rename(out)
    print(f"[prepare]   {out} ({seconds:.0f} s)", flush=True)
    return out, seconds


def _synthetic(fresh: bool) -> Path:
    from movierec.data.synthetic import write_synthetic

    n_users, n_items, n_ratings = SYNTH_SHAPE
    out = WORK / "data" / f"synth-{n_users}u-{n_items}i-{n_ratings}r-s0"
    if (out / "COMPLETE").is_file() and not fresh:
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    print(f"[prepare] writing synthetic data {out.name} ...", flush=True)
    write_synthetic(tmp, n_users, n_items, n_ratings, seed=0)
    (tmp / "COMPLETE").write_text("ok\n")
    tmp.rename(out)
    return out


def prepare(args: argparse.Namespace) -> list[dict]:
    """The configurations to serve: [{name, path, data, train_s}]."""
    small = U.ML_LATEST_SMALL
    ep = [f"epochs={args.epochs}"] if args.epochs else []
    plan = [("small-itemknn", "itemknn", lambda: small, []),
            ("small-neumf", "neumf", lambda: small, ep)]
    if args.every_model:  # new people on every registered model (issue 23: 200 req/s, p99 under 50 ms)
        from movierec.models import REGISTRY

        neural = {"gmf", "mlp", "multvae", "multdae", "sasrec", "gru4rec", "content-neural", "neumf-features"}
        plan += [(f"small-{m}", m, lambda: small, ep if m in neural else [])
                 for m in REGISTRY if m not in ("itemknn", "neumf")]
    if not args.quick:
        gmf_ep = [f"epochs={args.epochs or SYNTH_GMF_EPOCHS}"]
        plan += [("synth-itemknn", "itemknn", lambda: _synthetic(args.fresh), []),
                 ("synth-gmf", "gmf", lambda: _synthetic(args.fresh), gmf_ep)]
    if args.only:
        wanted = set(args.only.split(","))
        plan = [p for p in plan if p[0] in wanted]
        if not plan:
            raise SystemExit(f"--only: none of {sorted(wanted)} is a configuration")
    out = []
    for name, model, data, settings in plan:
        d = data()
        path, seconds = _train(name, model, d, settings, args.fresh)
        out.append({"name": name, "model": model, "path": str(path), "data": d.name, "settings": settings,
                    "train_s": None if seconds is None else round(seconds, 1)})
    return out


def request_spec(run_dir: Path) -> dict:
    """What the clients draw from: every known user id and the bundle's most rated movie ids."""
    import numpy as np
    import pyarrow.parquet as pq
    from safetensors.numpy import load_file

    ids = pq.read_table(run_dir / "ids.parquet", columns=["kind", "index", "raw_id"]).to_pandas()
    users = ids[ids["kind"] == "user"].sort_values("index")["raw_id"].to_numpy()
    movies = ids[ids["kind"] == "movie"].sort_values("index")["raw_id"].to_numpy()
    train_items = load_file(str(run_dir / "split" / "split.safetensors"))["train.item"]
    counts = np.bincount(train_items, minlength=len(movies))
    popular = movies[np.argsort(-counts, kind="stable")[:POPULAR]]
    return {"users": [int(u) for u in users], "popular": [int(m) for m in popular]}


# ------------------------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


class Server:
    """``serve([path], port, cache_users)`` in its own process group; killed on exit, error or Ctrl-C."""

    live: ClassVar[set[Server]] = set()

    def __init__(self, path: str, cache_users: int, log: Path, env: dict[str, str] | None = None,
                 api_key: str | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = ("from movierec.serving.api import serve; "
                f"serve([{path!r}], host='127.0.0.1', port={self.port}, cache_users={cache_users}, "
                f"api_key={api_key!r})")
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self._log_f = open(log, "w")  # closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=self._log_f, stderr=subprocess.STDOUT,
                                     start_new_session=True, env={**os.environ, **(env or {})})
        Server.live.add(self)
        self.t0 = time.perf_counter()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float) -> float:
        import httpx

        deadline = self.t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited (rc {self.proc.returncode}): {self._tail()}")
            try:
                r = httpx.get(self.url + "/health", timeout=2)
                if r.status_code == 200:
                    return time.perf_counter() - self.t0
                if r.json().get("status") == "failed":
                    raise RuntimeError(f"server failed to load: {r.json().get('error')}")
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"server not ready after {timeout:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        try:
            return self.log.read_text()[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self._log_f.close()
        Server.live.discard(self)

    @classmethod
    def stop_all(cls) -> None:
        for s in list(cls.live):
            s.stop()


def fd_count(pid: int) -> int | None:
    """Open file descriptors of a process (its sockets among them)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class RssSampler(threading.Thread):
    """VmRSS of ``pid`` (or what ``measure`` says of it) every ``every`` seconds until stopped."""

    def __init__(self, pid: int, every: float = 1.0, measure=None) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.samples = pid, every, []
        self.measure = measure or rss_mb
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while True:
            v = self.measure(self.pid)
            if v is not None:
                self.samples.append(round(v, 1))
            if self._stop_evt.wait(self.every):
                break

    def finish(self) -> list[float]:
        self._stop_evt.set()
        self.join()
        v = self.measure(self.pid)
        if v is not None:
            self.samples.append(round(v, 1))
        return self.samples


# ------------------------------------------------------------------------------------------- client


def _requests(spec: dict, endpoint: str, model: str, seed: int, k: int):
    """An endless, seeded stream of (method, path, json body or None, user id or None)."""
    rng = random.Random(seed)
    users, popular = spec["users"], spec["popular"]
    while True:
        if endpoint == "user":
            user = rng.choice(users)
            yield "GET", f"/v1/users/{user}/recommendations?k={k}&model={model}", None, user
        else:
            n = rng.randint(3, 10)
            movies = rng.sample(popular, min(n, len(popular)))
            ratings = [{"movie_id": m, "rating": rng.randint(1, 10) / 2} for m in movies]
            yield "POST", "/v1/recommendations", {"ratings": ratings, "k": k, "model": model}, None


async def _drive(cfg: dict) -> dict:
    import httpx

    spec = json.loads(Path(cfg["spec"]).read_text())
    conc, url = cfg["concurrency"], cfg["url"]
    t_start = time.perf_counter()
    t_measure = t_start + cfg["warmup"]
    t_end = t_measure + cfg["duration"]
    lat: list[float] = []
    errors: dict[str, int] = {}
    distinct: set[int] = set()
    marks: dict[str, float | None] = {}
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    timeout = httpx.Timeout(cfg["timeout"])

    async def mark_when(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        marks[name + "_client_cpu"] = time.process_time()
        marks[name + "_server_cpu"] = cpu_seconds(cfg["server_pid"])
        marks[name + "_t"] = time.perf_counter()

    async def ask(client: httpx.AsyncClient, request: tuple, started: float, counts) -> None:
        """Send one request; when ``counts(end time)``, tally it: its latency from ``started`` (200) or its
        error."""
        method, path, body, user = request
        try:
            r = await client.request(method, path, json=body)
            code = r.status_code
            if code == 200:
                r.json()  # a real client parses the answer
        except httpx.HTTPError as e:
            code = type(e).__name__
        t1 = time.perf_counter()
        if not counts(t1):
            return
        if code == 200:
            lat.append(t1 - started)
            if cfg["endpoint"] == "user":
                distinct.add(user)
        else:
            errors[str(code)] = errors.get(str(code), 0) + 1

    async def worker(w: int, client: httpx.AsyncClient) -> None:
        stream = _requests(spec, cfg["endpoint"], cfg["model"], cfg["seed"] * 1000 + w, cfg["k"])
        while (t0 := time.perf_counter()) < t_end:  # completions inside the measured window count
            await ask(client, next(stream), t0, lambda t1: t_measure <= t1 <= t_end)

    async def open_loop(client: httpx.AsyncClient) -> None:
        """Requests at fixed times, ``rate`` a second whatever the answers take (no coordinated omission)."""
        stream = _requests(spec, cfg["endpoint"], cfg["model"], cfg["seed"] * 1000, cfg["k"])
        interval = 1.0 / cfg["rate"]
        pending: set = set()
        due = t_start + cfg["offset"] * interval
        while due < t_end:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            # requests due inside the measured window count, however late they end; from when they were due
            task = asyncio.create_task(ask(client, next(stream), due, lambda _, due=due: t_measure <= due < t_end))
            pending.add(task)
            task.add_done_callback(pending.discard)
            due += interval
        if pending:  # what a server that fell behind has not answered one timeout after the end is an error
            await asyncio.wait(set(pending), timeout=cfg["timeout"])
        late = list(pending)
        for task in late:
            task.cancel()
        errors.update({"unanswered": len(late)} if late else {})
        await asyncio.gather(*late, return_exceptions=True)

    if cfg.get("rate"):  # open loop: as many connections as the answers' delay needs, within a cap
        limits = httpx.Limits(max_connections=OPEN_LOOP_CONNECTIONS, max_keepalive_connections=OPEN_LOOP_CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        load = [open_loop(client)] if cfg.get("rate") else [worker(w, client) for w in range(conc)]
        await asyncio.gather(mark_when("start", t_measure), mark_when("end", t_end), *load)
    window = marks["end_t"] - marks["start_t"]
    server_cpu = (None if marks["start_server_cpu"] is None or marks["end_server_cpu"] is None
                  else marks["end_server_cpu"] - marks["start_server_cpu"])
    return {"ok": len(lat), "errors": errors, "window_s": window, "latencies_s": lat,
            "distinct_users": sorted(distinct),
            "client_cpu": (marks["end_client_cpu"] - marks["start_client_cpu"]) / window,
            "server_cpu": None if server_cpu is None else server_cpu / window}


OPEN_LOOP_CONNECTIONS = 64  # per client process, --rate: a request beyond them waits for one (and counts it)


def client_main(cfg_json: str) -> None:
    """Entry point of an httpx client process: prints one JSON object."""
    print(json.dumps(asyncio.run(_drive(json.loads(cfg_json)))))


# ------------------------------------------------------------------------------------------- wrk client

WRK_BODIES = 1000  # distinct new-person bodies the wrk script picks from (at random)
WRK_MARK = "BENCH_JSON "

WRK_LUA = r"""-- generated by benchmarks/bench_serve.py: %(what)s
local ids = {%(ids)s}
local bodies = {%(bodies)s}
local model, k = %(model)s, %(k)d
local threads, counter = {}, 0
local reqs, n

function setup(thread)  -- main state, once per thread before it starts
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)  -- thread state; args[1] = seed
  math.randomseed((tonumber(args[1]) or 0) * 1000 + (tid or 1))
  seen = {}  -- global: done() reads it with thread:get
  reqs = {}
  if #bodies > 0 then
    local headers = {["Content-Type"] = "application/json"}
    for i, body in ipairs(bodies) do reqs[i] = wrk.format("POST", "/v1/recommendations", headers, body) end
  else
    for i, id in ipairs(ids) do
      reqs[i] = wrk.format("GET", "/v1/users/" .. id .. "/recommendations?k=" .. k .. "&model=" .. model)
    end
  end
  n = #reqs
end

function request()
  local i = math.random(n)
  if #bodies == 0 then seen[i] = true end
  return reqs[i]
end

function done(summary, latency, requests)
  local all, distinct = {}, 0
  for _, t in ipairs(threads) do
    for i, _ in pairs(t:get("seen") or {}) do
      if not all[i] then all[i] = true; distinct = distinct + 1 end
    end
  end
  local e = summary.errors
  io.write(string.format('%(mark)s{"duration_us": %%d, "requests": %%d, "connect": %%d, "read": %%d, ' ..
    '"write": %%d, "status": %%d, "timeout": %%d, "mean_us": %%.1f, "max_us": %%d, "p50_us": %%d, "p75_us": %%d, ' ..
    '"p90_us": %%d, "p99_us": %%d, "distinct": %%d}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout, latency.mean,
    latency.max, latency:percentile(50), latency:percentile(75), latency:percentile(90), latency:percentile(99),
    distinct))
end
"""

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _lua_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def wrk_script(spec: dict, endpoint: str, model: str, seed: int, k: int) -> str:
    """Lua for wrk: GETs of seeded-random known users (ids of the spec), or POSTs of pre-generated new people."""
    if endpoint == "user":
        ids, bodies = ",".join(str(u) for u in spec["users"]), ""
    else:
        stream = _requests(spec, endpoint, model, seed, k)  # the generator of the httpx client
        bodies = ",\n".join(_lua_str(json.dumps(next(stream)[2])) for _ in range(WRK_BODIES))
        ids = ""
    return WRK_LUA % {"what": endpoint, "ids": ids, "bodies": bodies, "model": _lua_str(model), "k": k,
                      "mark": WRK_MARK}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_S[unit] * 1000


def parse_wrk(text: str) -> dict:
    """wrk's printed summary: rps, latency percentiles / max / mean (ms), non-2xx and socket errors."""
    import re

    out: dict = {}
    num = r"([0-9.]+)(us|ms|s|m|h)"
    m = re.search(r"^\s*Latency\s+" + num + r"\s+" + num + r"\s+" + num, text, re.M)
    if m:
        out["mean_ms"], out["max_ms"] = _ms(m[1], m[2]), _ms(m[5], m[6])
    for q in (50, 75, 90, 99):
        m = re.search(rf"^\s*{q}(?:\.0+)?%\s+" + num, text, re.M)
        if m:
            out[f"p{q}_ms"] = _ms(m[1], m[2])
    m = re.search(r"^\s*Requests/sec:\s*([0-9.]+)", text, re.M)
    if m:
        out["rps"] = float(m[1])
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h)", text, re.M)
    if m:
        out["requests"], out["duration_s"] = int(m[1]), _ms(m[2], m[3]) / 1000
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    out["status"] = int(m[1]) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    for i, key in enumerate(("connect", "read", "write", "timeout"), 1):
        out[key] = int(m[i]) if m else 0
    return out


def wrk_version() -> str:
    p = subprocess.run(["wrk", "-v"], capture_output=True, text=True)  # "wrk 4.1.0 [epoll] Copyright ..."
    text = (p.stdout or p.stderr).strip()
    return text.splitlines()[0].split(" Copyright")[0] if text else "wrk"


def _wrk_cmd(url: str, script: Path, threads: int, conc: int, seconds: int, timeout: int, seed: int) -> list[str]:
    return ["wrk", f"-t{threads}", f"-c{conc}", f"-d{seconds}s", "--latency", f"--timeout={timeout}s",
            "-s", str(script), url, "--", str(seed)]


def _run_wrk(cmd: list[str], limit: float, server_pid: int | None = None) -> dict:
    """Run wrk to its end; its stdout, wall seconds, and the CPU seconds of wrk (from /proc while it is a
    zombie, not yet reaped) and of ``server_pid`` over the run."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        server0 = cpu_seconds(server_pid) if server_pid else None
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        try:
            deadline = t0 + limit
            while True:  # wait for its exit without reaping it, so /proc/PID/stat still holds its CPU time
                res = os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
                if res is not None:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"wrk still running after {limit:.0f} s: {' '.join(cmd)}")
                time.sleep(0.02)
            wall = time.perf_counter() - t0
            server1 = cpu_seconds(server_pid) if server_pid else None
            client_cpu = cpu_seconds(p.pid)
            rc = p.wait()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if rc != 0:
        raise RuntimeError(f"wrk failed (rc {rc}): {' '.join(cmd)}\n{stderr[-3000:]}{stdout[-3000:]}")
    return {"stdout": stdout, "wall_s": wall, "client_cpu_s": client_cpu,
            "server_cpu_s": None if server0 is None or server1 is None else server1 - server0}


def wrk_drive(server: Server, spec_file: Path, endpoint: str, model: str, args: argparse.Namespace,
              seed: int) -> dict:
    """An unmeasured wrk run of ``--warmup`` s, then the measured one: the measured window's figures."""
    spec = json.loads(spec_file.read_text())
    timeout = max(1, math.ceil(args.request_timeout))
    with tempfile.TemporaryDirectory(prefix="bench-serve-wrk-") as tmp:
        script = Path(tmp) / f"{endpoint}.lua"
        script.write_text(wrk_script(spec, endpoint, model, seed, args.k))
        limit_extra = timeout + 60
        if args.warmup > 0:  # another seed: the measured run does not replay the warm-up's users
            _run_wrk(_wrk_cmd(server.url, script, args.clients, args.concurrency, int(args.warmup), timeout,
                              seed * 2 + 1), args.warmup + limit_extra)
        run = _run_wrk(_wrk_cmd(server.url, script, args.clients, args.concurrency, int(args.duration), timeout,
                                seed * 2), args.duration + limit_extra, server.pid)
    text = run["stdout"]
    parsed = parse_wrk(text)
    exact = None  # the done() hook's figures: exact (us), where the printed summary rounds
    for line in text.splitlines():
        if line.startswith(WRK_MARK):
            exact = json.loads(line[len(WRK_MARK):])
    if exact:
        figures = {"requests": exact["requests"], "duration_s": exact["duration_us"] / 1e6,
                   **{key: exact[key] for key in ("connect", "read", "write", "timeout", "status")},
                   **{f"{q}_ms": exact[f"{q}_us"] / 1000 for q in ("p50", "p75", "p90", "p99", "max", "mean")}}
    else:
        figures = parsed
    if "requests" not in figures or "p99_ms" not in figures:
        raise RuntimeError(f"could not read wrk's output:\n{text[-3000:]}")
    errors = {("non-2xx" if key == "status" else f"socket {key}"): figures[key]
              for key in ("status", "connect", "read", "write", "timeout") if figures[key]}
    ok = figures["requests"] - figures["status"]
    window = figures["duration_s"]
    summary = [ln for ln in text.splitlines() if ln and not ln.startswith(WRK_MARK)]
    return {"ok": ok, "errors": errors, "window_s": window,
            "pct_ms": {q: figures[f"p{q}_ms"] for q in (50, 75, 90, 99)},
            "max_ms": figures["max_ms"], "mean_ms": figures["mean_ms"],
            "distinct_users": exact["distinct"] if exact and endpoint == "user" else None,
            # wrk's CPU over its whole run (its -t threads: mean per thread, as a fraction of one core)
            "client_cpu": (None if run["client_cpu_s"] is None
                           else run["client_cpu_s"] / run["wall_s"] / args.clients),
            "server_cpu_s": run["server_cpu_s"], "server_cpu": (None if run["server_cpu_s"] is None
                                                              else run["server_cpu_s"] / run["wall_s"]),
            "wrk_rps": parsed.get("rps"), "wrk_summary": summary}


# ------------------------------------------------------------------------------------------- a load run


def httpx_drive(server: Server, spec_file: Path, endpoint: str, model: str, args: argparse.Namespace,
                seed: int) -> dict:
    """Drive ``server`` with ``args.clients`` httpx client processes; the measured window's figures."""
    import numpy as np

    n = args.clients
    per = [args.concurrency // n + (1 if i < args.concurrency % n else 0) for i in range(n)]
    procs = []
    try:
        for i in range(n):
            cfg = {"url": server.url, "spec": str(spec_file), "endpoint": endpoint, "model": model,
                   "concurrency": per[i], "warmup": args.warmup, "duration": args.duration, "k": args.k,
                   "seed": seed * 100 + i, "server_pid": server.pid, "timeout": args.request_timeout,
                   "rate": args.rate / n if args.rate else None, "offset": i / n}
            procs.append(subprocess.Popen([sys.executable, __file__, CLIENT_PROCESS, json.dumps(cfg)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outs = []
        for p in procs:
            waits = 2 if args.rate else 1  # an open loop also waits out what is late at the end
            out, err = p.communicate(timeout=args.warmup + args.duration + waits * args.request_timeout + 60)
            if p.returncode != 0:
                raise RuntimeError(f"client failed (rc {p.returncode}):\n{err[-3000:]}")
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    lat = np.array([x for o in outs for x in o["latencies_s"]]) * 1000
    ok = len(lat)
    errors: dict[str, int] = {}
    for o in outs:
        for key, v in o["errors"].items():
            errors[key] = errors.get(key, 0) + v
    window = float(np.mean([o["window_s"] for o in outs]))
    server_cpu = outs[0]["server_cpu"]
    return {"ok": ok, "errors": errors, "window_s": window,
            "pct_ms": {q: float(np.percentile(lat, q)) if ok else None for q in (50, 75, 90, 99)},
            "max_ms": float(lat.max()) if ok else None, "mean_ms": float(lat.mean()) if ok else None,
            "distinct_users": (len(set().union(*(o["distinct_users"] for o in outs))) if endpoint == "user"
                               else None),
            "client_cpu": max(o["client_cpu"] for o in outs),
            "server_cpu": server_cpu, "server_cpu_s": None if server_cpu is None else server_cpu * window}


def load_run(server: Server, spec_file: Path, endpoint: str, model: str, args: argparse.Namespace,
             seed: int) -> dict:
    """Drive ``server`` with the chosen client (wrk or httpx) while sampling its RSS; the row of the run."""
    load_before = os.getloadavg()[0]
    sampler = RssSampler(server.pid)
    sampler.start()
    try:
        drive = wrk_drive if args.client == "wrk" else httpx_drive
        res = drive(server, spec_file, endpoint, model, args, seed)
    finally:
        rss = sampler.finish()
    ok, errors, window = res["ok"], res["errors"], res["window_s"]

    def r2(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    client_cpu = res["client_cpu"]
    row = {"client": args.client, "requests": ok + sum(errors.values()), "ok": ok, "errors": sum(errors.values()),
           "error_kinds": errors, "window_s": round(window, 2), "rps": round(ok / window, 1) if window else 0.0,
           **{f"p{q}_ms": r2(v) for q, v in res["pct_ms"].items()},
           "max_ms": r2(res["max_ms"]), "mean_ms": r2(res["mean_ms"]),
           "rss_start_mb": rss[0] if rss else None, "rss_max_mb": max(rss) if rss else None,
           "rss_end_mb": rss[-1] if rss else None, "rss_samples_mb": rss,
           "server_cpu_cores": r2(res["server_cpu"]),
           # CPU time the server spent per answered request: comparable even on a busy machine
           "server_cpu_ms_per_req": (round(res["server_cpu_s"] / ok * 1000, 2)
                                     if ok and res["server_cpu_s"] is not None else None),
           "loadavg_1min_before": round(load_before, 2),
           "client_cpu_max": r2(client_cpu),
           "client_bound": client_cpu is not None and client_cpu >= CLIENT_BOUND,
           "clients": args.clients, "concurrency": None if args.rate else args.concurrency,
           "rate": args.rate}
    if args.client == "wrk":
        row["wrk_rps"] = res["wrk_rps"]  # wrk's own figure: non-2xx answers included
        row["wrk_summary"] = res["wrk_summary"]
    if endpoint == "user":
        # every user id requested in the window at least once; with the cache on, repeats are (roughly) hits
        row["distinct_users"] = res["distinct_users"]
        if ok and res["distinct_users"] is not None:
            row["repeat_share"] = round(max(0.0, 1 - res["distinct_users"] / ok), 3)  # ~ cache hits (cache on)
    return row


# ------------------------------------------------------------------------------------------- hostile clients


class _Tally:
    """What one kind of hostile client met: connections, how the server ended them, and when."""

    def __init__(self) -> None:
        self.connections = 0
        self.connect_errors = 0
        self.statuses: dict[str, int] = {}
        self.closed_by_server = 0
        self.lifetimes: list[float] = []  # seconds from connect to the server's close
        self.bytes_sent = 0

    def ended(self, data: bytes | None, t0: float) -> None:
        """The server closed the connection after ``data`` (None: reset while the client was still sending, so
        any answer was lost: the kernel drops what was unread)."""
        self.closed_by_server += 1
        self.lifetimes.append(time.perf_counter() - t0)
        status = ("reset" if data is None else data.split(b" ", 2)[1].decode("ascii", "replace")
                  if data.startswith(b"HTTP/1.1 ") else "closed")
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def summary(self) -> dict:
        import numpy as np

        life = np.array(self.lifetimes) if self.lifetimes else None
        return {"connections": self.connections, "connect_errors": self.connect_errors,
                "closed_by_server": self.closed_by_server, "statuses": self.statuses,
                "mb_sent": round(self.bytes_sent / 2**20, 1),
                "held_s_p50": None if life is None else round(float(np.median(life)), 2),
                "held_s_max": None if life is None else round(float(life.max()), 2)}


async def _read_until_close(reader: asyncio.StreamReader, stop_at: float) -> tuple[bytes | None, bool]:
    """What the server sends until it closes the connection (True) or ``stop_at`` passes (False); None for the
    data when the connection was reset."""
    data = b""
    while time.perf_counter() < stop_at:
        try:
            wait = max(0.01, min(1.0, stop_at - time.perf_counter()))
            chunk = await asyncio.wait_for(reader.read(65536), timeout=wait)
        except asyncio.TimeoutError:
            continue
        except ConnectionError:
            return data or None, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


async def _connect(cfg: dict, tally: _Tally) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        conn = await asyncio.open_connection("127.0.0.1", cfg["port"])
    except OSError:
        tally.connect_errors += 1
        await asyncio.sleep(0.5)
        return None
    tally.connections += 1
    return conn


async def _half_open(cfg: dict, stop_at: float, tally: _Tally) -> None:
    """Connect, send nothing, wait for the server to give up; again."""
    while time.perf_counter() < stop_at:
        conn = await _connect(cfg, tally)
        if conn is None:
            continue
        t0 = time.perf_counter()
        data, closed = await _read_until_close(conn[0], stop_at)
        if closed:
            tally.ended(data, t0)
        conn[1].close()


async def _slowloris(cfg: dict, stop_at: float, tally: _Tally) -> None:
    """A request head that grows by one header line a second and never ends; again when the server closes it."""
    while time.perf_counter() < stop_at:
        conn = await _connect(cfg, tally)
        if conn is None:
            continue
        reader, writer = conn
        t0, n = time.perf_counter(), 0
        data: bytes | None = b""
        closed = False
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while time.perf_counter() < stop_at and not closed:
                data, closed = await _read_until_close(reader, min(stop_at, time.perf_counter() + 1.0))
                if not closed:
                    line = f"X-Slow-{n}: {n}\r\n".encode()
                    writer.write(line)
                    await writer.drain()
                    tally.bytes_sent += len(line)
                    n += 1
        except ConnectionError:
            closed = True
        if closed:
            tally.ended(data, t0)
        writer.close()


async def _big_body(cfg: dict, stop_at: float, tally: _Tally, chunked: bool) -> None:
    """POST a 60 MB body (declared by Content-Length, or chunked) as fast as the server takes it; again."""
    piece = b"[" * 65536
    while time.perf_counter() < stop_at:
        conn = await _connect(cfg, tally)
        if conn is None:
            continue
        reader, writer = conn
        t0 = time.perf_counter()
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % BIG_BODY
        answer = asyncio.ensure_future(_read_until_close(reader, stop_at))
        try:
            writer.write(b"POST /v1/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                         b"\r\n" + framing + b"\r\n\r\n")
            sent = 0
            while sent < BIG_BODY and not answer.done() and time.perf_counter() < stop_at:
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await writer.drain()
                sent += len(piece)
                tally.bytes_sent += len(piece)
        except ConnectionError:
            pass
        data, closed = await answer
        if closed:
            tally.ended(data, t0)
        writer.close()
        await asyncio.sleep(cfg["big_pause"])


async def _endless_head(cfg: dict, stop_at: float, tally: _Tally) -> None:
    """A request head with one header that never ends, sent as fast as the server takes it; again."""
    while time.perf_counter() < stop_at:
        conn = await _connect(cfg, tally)
        if conn is None:
            continue
        reader, writer = conn
        t0 = time.perf_counter()
        answer = asyncio.ensure_future(_read_until_close(reader, stop_at))
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
            while not answer.done() and time.perf_counter() < stop_at:
                writer.write(b"a" * 4096)
                await writer.drain()
                tally.bytes_sent += 4096
        except ConnectionError:
            pass
        data, closed = await answer
        if closed:
            tally.ended(data, t0)
        writer.close()
        await asyncio.sleep(cfg["big_pause"])


async def _hostile(cfg: dict) -> dict:
    """Every hostile client for ``cfg["seconds"]``; what each kind met, and the CPU this process used (cores)."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    stop_at = t0 + cfg["seconds"]
    kinds = {"half-open": _Tally(), "slowloris": _Tally(), "big body (Content-Length)": _Tally(),
             "big body (chunked)": _Tally(), "endless head": _Tally()}
    n_half = cfg["slow"] // 2
    n_big = cfg["big"]
    tasks = [_half_open(cfg, stop_at, kinds["half-open"]) for _ in range(n_half)]
    tasks += [_slowloris(cfg, stop_at, kinds["slowloris"]) for _ in range(cfg["slow"] - n_half)]
    tasks += [_big_body(cfg, stop_at, kinds["big body (Content-Length)"], False) for _ in range(n_big // 2)]
    tasks += [_big_body(cfg, stop_at, kinds["big body (chunked)"], True) for _ in range(n_big - n_big // 2)]
    tasks += [_endless_head(cfg, stop_at, kinds["endless head"])]
    await asyncio.gather(*tasks)
    cores = (time.process_time() - cpu0) / (time.perf_counter() - t0)
    return {"kinds": {name: t.summary() for name, t in kinds.items()}, "client_cpu_cores": round(cores, 2)}


def hostile_main(cfg_json: str) -> None:
    """Entry point of the hostile client process: prints one JSON object."""
    print(json.dumps(asyncio.run(_hostile(json.loads(cfg_json)))))


def hostile_config(conf: dict, args: argparse.Namespace, seed: int) -> dict:
    """The normal clients alone, then beside the hostile ones, on one server with serve's limits."""
    spec_file = WORK / "specs" / f"{conf['name']}.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec = request_spec(Path(conf["path"]))
    spec_file.write_text(json.dumps(spec))
    server = Server(conf["path"], args.cache_users, WORK / "logs" / f"{conf['name']}-hostile.log", args.server_env)
    try:
        ready_s = server.wait_ready(args.ready_timeout)
        print(f"[hostile] {conf['name']}: ready in {ready_s:.1f} s, RSS {rss_mb(server.pid):.0f} MB", flush=True)
        alone = load_run(server, spec_file, "user", conf["model"], args, seed)
        print(f"[hostile]   normal clients alone: p99 {alone['p99_ms']} ms, {alone['rps']} req/s, errors "
              f"{alone['errors']}", flush=True)
        rss = RssSampler(server.pid, 0.5)
        fds = RssSampler(server.pid, 0.5, measure=fd_count)
        seconds = args.ramp + args.warmup + args.duration + 1
        cfg = {"port": server.port, "seconds": seconds, "slow": args.slow, "big": args.big, "big_pause": 0.2}
        rss.start()
        fds.start()
        load_before = os.getloadavg()[0]
        server_cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
        hostile = subprocess.Popen([sys.executable, __file__, HOSTILE_PROCESS, json.dumps(cfg)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(args.ramp)  # the slow connections are open before the normal clients start
            beside = load_run(server, spec_file, "user", conf["model"], args, seed + 1)
            out, err = hostile.communicate(timeout=seconds + 60)
        finally:
            if hostile.poll() is None:
                hostile.kill()
                hostile.wait()
        rss_samples, fd_samples = rss.finish(), fds.finish()
        server_cpu1, t1 = cpu_seconds(server.pid), time.perf_counter()
        if hostile.returncode != 0:
            raise RuntimeError(f"hostile client failed (rc {hostile.returncode}):\n{err[-3000:]}")
        met = json.loads(out.strip().splitlines()[-1])
        print(f"[hostile]   beside the hostile clients: p99 {beside['p99_ms']} ms, {beside['rps']} req/s, errors "
              f"{beside['errors']}; server RSS {rss_samples[0]:.0f} -> max {max(rss_samples):.0f} MB, "
              f"open fds max {max(fd_samples)}", flush=True)
        server_cores = (None if server_cpu0 is None or server_cpu1 is None
                        else round((server_cpu1 - server_cpu0) / (t1 - t0), 2))
        return {"config": conf["name"], "model": conf["model"], "ready_s": round(ready_s, 1), "alone": alone,
                "beside": beside, "hostile": met["kinds"], "hostile_client_cpu_cores": met["client_cpu_cores"],
                "server_cpu_cores_hostile_phase": server_cores, "loadavg_1min_before_hostile": round(load_before, 2),
                "hostile_settings": cfg,
                "rss_start_mb": rss_samples[0], "rss_max_mb": max(rss_samples), "rss_end_mb": rss_samples[-1],
                "rss_growth_mb": round(max(rss_samples) - rss_samples[0], 1), "fds_max": max(fd_samples),
                "fds_start": fd_samples[0],
                "p99_ok": beside["p99_ms"] is not None and beside["p99_ms"] < HOSTILE_P99_MS,
                "rss_ok": max(rss_samples) - rss_samples[0] <= HOSTILE_RSS_MB}
    finally:
        server.stop()


def print_hostile(results: list[dict], client_desc: str) -> None:
    print()
    print(f"normal clients: {client_desc}, known users (cache on)")
    print()
    print("| configuration | normal clients | req/s | p50 ms | p99 ms | max ms | errors | server RSS start / max MB | "
          "server fds max |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        for label, row, rss, fds in (("alone", r["alone"], f"{r['alone']['rss_start_mb']:.0f} / "
                                      f"{r['alone']['rss_max_mb']:.0f}", "-"),
                                     ("beside hostile clients", r["beside"],
                                      f"{r['rss_start_mb']:.0f} / {r['rss_max_mb']:.0f}", str(r["fds_max"]))):
            print(f"| {r['config']} | {label} | {row['rps']:.1f} | {row['p50_ms']} | {row['p99_ms']} | "
                  f"{row['max_ms']} | {row['errors']} | {rss} | {fds} |")
    print()
    print("| hostile client | connections | closed by the server | statuses | held s (median / max) | MB sent |")
    print("|---|---:|---:|---|---|---:|")
    for r in results:
        for name, t in r["hostile"].items():
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(t["statuses"].items())) or "-"
            print(f"| {name} | {t['connections']} | {t['closed_by_server']} | {statuses} | {t['held_s_p50']} / "
                  f"{t['held_s_max']} | {t['mb_sent']} |")
    print()
    for r in results:
        print(f"{r['config']}: CPU over the hostile phase: server {r['server_cpu_cores_hostile_phase']} cores, "
              f"hostile clients {r['hostile_client_cpu_cores']}, normal clients {r['beside']['client_cpu_max']} "
              f"(of {os.cpu_count()}); 1-min load average before: alone {r['alone']['loadavg_1min_before']}, "
              f"hostile {r['loadavg_1min_before_hostile']}")
        print(f"{r['config']}: normal p99 beside the hostile clients {r['beside']['p99_ms']} ms "
              f"({'within' if r['p99_ok'] else 'NOT within'} {HOSTILE_P99_MS:g} ms); server RSS growth "
              f"{r['rss_growth_mb']} MB ({'within' if r['rss_ok'] else 'NOT within'} {HOSTILE_RSS_MB:g} MB)")


# ------------------------------------------------------------------------------------------- main


def serve_config(conf: dict, args: argparse.Namespace, seed: int) -> list[dict]:
    """Every endpoint run of one configuration: a cached server (user, person), then an uncached one (user)."""
    spec_file = WORK / "specs" / f"{conf['name']}.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec = request_spec(Path(conf["path"]))
    spec_file.write_text(json.dumps(spec))
    rows = []
    wanted = args.endpoints
    plan = [(args.cache_users, [e for e in ("user", "person") if e in wanted]),
            (0, ["user"] if "user-nocache" in wanted else [])]
    for cache_users, endpoints in plan:
        if not endpoints:
            continue
        log = WORK / "logs" / f"{conf['name']}-cache{cache_users}.log"
        server = Server(conf["path"], cache_users, log, args.server_env)
        try:
            ready_s = server.wait_ready(args.ready_timeout)
            rss_ready = rss_mb(server.pid)
            print(f"[serve] {conf['name']} cache_users={cache_users}: ready in {ready_s:.1f} s, "
                  f"RSS {rss_ready:.0f} MB (pid {server.pid}, port {server.port})", flush=True)
            for endpoint in endpoints:
                row = {"config": conf["name"], "model": conf["model"], "data": conf["data"],
                       "endpoint": endpoint, "cache_users": cache_users, "ready_s": round(ready_s, 1),
                       "users": len(spec["users"])}
                row.update(load_run(server, spec_file, endpoint, conf["model"], args, seed))
                seed += 1
                rows.append(row)
                print(f"[serve]   {endpoint:6s} {row['rps']:8.1f} req/s  p50 {row['p50_ms']} ms  "
                      f"p99 {row['p99_ms']} ms  errors {row['errors']}  server CPU {row['server_cpu_cores']}  "
                      f"client ({args.client}) CPU {row['client_cpu_max']}", flush=True)
        finally:
            server.stop()
    return rows


RELOAD_KEY = "bench-serve-reload-key"


def reload_config(conf: dict, args: argparse.Namespace, seed: int) -> list[dict]:
    """Known users, then new people, each with a reload of the served folder in the middle of the window."""
    import threading

    import httpx

    spec_file = WORK / "specs" / f"{conf['name']}.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(request_spec(Path(conf["path"]))))
    server = Server(conf["path"], args.cache_users, WORK / "logs" / f"{conf['name']}-reload.log", args.server_env,
                    api_key=RELOAD_KEY)
    rows = []
    try:
        ready_s = server.wait_ready(args.ready_timeout)
        auth = {"Authorization": f"Bearer {RELOAD_KEY}"}
        for endpoint in ("user", "person"):
            swap: dict = {}

            def reload_midway(swap: dict = swap) -> None:
                time.sleep(args.warmup + args.duration / 2)
                t0 = time.perf_counter()
                r = httpx.post(server.url + "/v1/admin/reload", headers=auth, timeout=30)
                swap["accepted"] = r.status_code
                while time.perf_counter() - t0 < 300:
                    status = httpx.get(server.url + "/v1/admin/reload", headers=auth, timeout=30).json()
                    if status["status"] in ("done", "failed"):
                        swap.update(status=status["status"], error=status["error"])
                        break
                    time.sleep(0.05)
                swap["seconds"] = round(time.perf_counter() - t0, 2)

            thread = threading.Thread(target=reload_midway)
            thread.start()
            row = {"config": conf["name"], "model": conf["model"], "endpoint": endpoint, "ready_s": round(ready_s, 1)}
            row.update(load_run(server, spec_file, endpoint, conf["model"], args, seed))
            thread.join()
            row["reload"] = swap
            seed += 1
            rows.append(row)
            print(f"[reload] {conf['name']} {endpoint:6s} {row['rps']:8.1f} req/s  p50 {row['p50_ms']} ms  "
                  f"p99 {row['p99_ms']} ms  errors {row['errors']}  reload {swap}", flush=True)
    finally:
        server.stop()
    return rows


def _label(r: dict) -> str:
    if r["endpoint"] == "person":
        return "new person (POST)"
    if not r["cache_users"]:
        return "known user, cache off"
    share = r.get("repeat_share")
    return "known user, cached" + (f" ({share:.0%} repeats)" if share is not None else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: ml-latest-small only, NeuMF 1 epoch, "
                    "1 s warm-up + 3 s per run")
    ap.add_argument("--every-model", action="store_true", help="also serve every other registered model, trained "
                    "on ml-latest-small (small-<model>: use with --only or --endpoints person)")
    ap.add_argument("--fresh", action="store_true", help="retrain the run folders (and rewrite the data)")
    ap.add_argument("--only", help="comma-separated configurations: small-itemknn, small-neumf, synth-itemknn, "
                    "synth-gmf")
    ap.add_argument("--endpoints", default="user,person,user-nocache",
                    help="runs per configuration: user (cache on), person, user-nocache (a server with cache_users=0)")
    ap.add_argument("--epochs", type=int, help="epochs of NeuMF / GMF (default: NeuMF's own default on "
                    f"ml-latest-small, {SYNTH_GMF_EPOCHS} for GMF on the synthetic data; 1 with --quick)")
    ap.add_argument("--duration", type=float, help="measured seconds per run (default 20; 3 with --quick)")
    ap.add_argument("--warmup", type=float, help="unmeasured seconds first (default 3; 1 with --quick)")
    ap.add_argument("--client", choices=("wrk", "httpx"),
                    help="load generator: wrk (default when `wrk` is on PATH) or httpx (Python, asyncio)")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight (all clients together)")
    ap.add_argument("--rate", type=float, help="httpx: an open loop instead, this many requests/s (all clients "
                    "together) sent on time whatever the answers take; latency counts from when each was due")
    ap.add_argument("--clients", type=int, help="httpx client processes, or wrk threads (-t; use 2 when one is "
                    "CPU-bound); default 1, 2 with --hostile (one httpx process near a full core adds its own tail)")
    ap.add_argument("--cache-users", type=int, default=50_000, help="cache_users of the cached server")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--request-timeout", type=float, default=30.0, help="seconds (whole seconds for wrk)")
    ap.add_argument("--ready-timeout", type=float, default=600.0)
    ap.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment of the servers (diagnosis, e.g. OMP_NUM_THREADS=1); repeatable")
    ap.add_argument("--hostile", action="store_true", help="the server under abuse: normal clients alone, then "
                    "beside half-open, slowloris, oversized-body and endless-head clients (small-itemknn unless "
                    "--only)")
    ap.add_argument("--slow", type=int, default=300, help="--hostile: slow connections held open (half half-open, "
                    "half slowloris)")
    ap.add_argument("--big", type=int, default=4, help="--hostile: clients sending 60 MB bodies in a loop")
    ap.add_argument("--ramp", type=float, default=2.0, help="--hostile: seconds the hostile clients run before "
                    "the normal ones start")
    ap.add_argument("--reload", action="store_true", help="a reload of the served folder in the middle of each "
                    "measured run (known users, new people): no request may fail across the swap")
    ap.add_argument("--out", help="results JSON (default benchmarks/results/bench_serve[_quick|_hostile|_reload]"
                    ".json)")
    args = ap.parse_args()
    if args.hostile:
        args.only = args.only or "small-itemknn"
        args.endpoints = "user"
    if args.quick:
        args.epochs = args.epochs or 1
    args.duration = args.duration or (3.0 if args.quick else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    args.clients = max(1, min(args.clients or (2 if args.hostile else 1), args.concurrency))
    args.client = args.client or ("wrk" if shutil.which("wrk") else "httpx")
    if args.rate is not None and (args.rate <= 0 or args.client != "httpx" or args.hostile or args.reload):
        ap.error("--rate: a positive number of requests/s, with --client httpx, not with --hostile or --reload")
    client_version = None
    if args.client == "wrk":
        if not shutil.which("wrk"):
            ap.error("--client wrk: wrk is not on PATH (Debian/Ubuntu: apt-get install wrk), or use --client httpx")
        # wrk takes whole seconds
        args.duration = float(max(1, math.ceil(args.duration)))
        args.warmup = float(math.ceil(args.warmup)) if args.warmup > 0 else 0.0
        client_version = wrk_version()
    else:
        import httpx

        client_version = f"httpx {httpx.__version__}"
    unit = "thread(s)" if args.client == "wrk" else "process(es)"
    load = f"{args.rate:g} requests/s sent on time" if args.rate else f"{args.concurrency} in flight"
    client_desc = f"{args.client} ({client_version}; {args.clients} {unit}, {load})"
    print(f"[serve] client: {client_desc}; {args.warmup:g} s warm-up + {args.duration:g} s per run", flush=True)
    args.endpoints = set(args.endpoints.split(","))
    if not args.endpoints <= {"user", "person", "user-nocache"}:
        ap.error("--endpoints: user, person, user-nocache")
    try:
        args.server_env = dict(kv.split("=", 1) for kv in args.server_env)
    except ValueError:
        ap.error("--server-env takes KEY=VALUE")

    def on_term(signum, frame):  # a kill of the benchmark still stops its servers
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even where a shell ignores SIGINT
    t0 = time.perf_counter()
    rows: list[dict] = []
    try:
        configs = prepare(args)
        for i, conf in enumerate(configs):
            if args.hostile:
                rows.append(hostile_config(conf, args, args.seed * 1000 + i * 10))
            elif args.reload:
                rows += reload_config(conf, args, args.seed * 1000 + i * 10)
            else:
                rows += serve_config(conf, args, args.seed * 1000 + i * 10)
    finally:
        Server.stop_all()
    if args.hostile:
        payload = {"date": U.stamp(), "machine": U.machine_info(), "mode": "hostile",
                   "settings": {"client": args.client, "client_version": client_version, "duration_s": args.duration,
                                "warmup_s": args.warmup, "concurrency": args.concurrency, "clients": args.clients,
                                "k": args.k, "cache_users": args.cache_users, "seed": args.seed, "slow": args.slow,
                                "big": args.big, "ramp_s": args.ramp, "big_body_bytes": BIG_BODY},
                   "configs": configs, "results": rows, "total_s": round(time.perf_counter() - t0, 1)}
        path = U.write_json("bench_serve_hostile.json", payload, Path(args.out) if args.out else None)
        print_hostile(rows, client_desc)
        print(f"results: {path}  ({payload['total_s']:.0f} s)")
        return

    if args.reload:
        payload = {"date": U.stamp(), "machine": U.machine_info(), "mode": "reload",
                   "settings": {"client": args.client, "client_version": client_version, "duration_s": args.duration,
                                "warmup_s": args.warmup, "concurrency": args.concurrency, "clients": args.clients,
                                "k": args.k, "cache_users": args.cache_users, "seed": args.seed},
                   "configs": configs, "rows": rows, "total_s": round(time.perf_counter() - t0, 1)}
        path = U.write_json("bench_serve_reload.json", payload, Path(args.out) if args.out else None)
        print()
        print("| configuration | endpoint | req/s | p50 ms | p99 ms | max ms | errors | reload s |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['config']} | {_label({**r, 'cache_users': args.cache_users})} | {r['rps']:.1f} | "
                  f"{r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['errors']} | {r['reload'].get('seconds')} "
                  f"({r['reload'].get('status')}) |")
        print(f"results: {path}  ({payload['total_s']:.0f} s)")
        return

    payload = {"date": U.stamp(), "machine": U.machine_info(), "quick": args.quick,
               "settings": {"client": args.client, "client_version": client_version,
                            "duration_s": args.duration, "warmup_s": args.warmup, "concurrency": args.concurrency,
                            "rate": args.rate, "clients": args.clients, "k": args.k, "cache_users": args.cache_users,
                            "seed": args.seed, "synthetic_shape": SYNTH_SHAPE, "workers": 1,
                            "server_env": args.server_env},
               "configs": configs, "rows": rows, "total_s": round(time.perf_counter() - t0, 1)}
    path = U.write_json("bench_serve_quick.json" if args.quick else "bench_serve.json", payload,
                        Path(args.out) if args.out else None)

    print()
    print(f"client: {client_desc}")
    print()
    print("| configuration | endpoint | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU cores | "
          "server CPU ms/req | client CPU | RSS start/max/end MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        client = ("-" if r["client_cpu_max"] is None
                  else f"{r['client_cpu_max']:.2f}" + (" (bound!)" if r["client_bound"] else ""))
        print(f"| {r['config']} | {_label(r)} | {r['rps']:.1f} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
              f"{r['max_ms']} | {r['errors']} | {r['server_cpu_cores']} | {r['server_cpu_ms_per_req']} | {client} | "
              f"{r['rss_start_mb']:.0f} / {r['rss_max_mb']:.0f} / {r['rss_end_mb']:.0f} |")
    bound = [r for r in rows if r["client_bound"]]
    print()
    if bound:
        print(f"NOTE: the client ({args.client}) used >= {CLIENT_BOUND:.0%} of a core in {len(bound)} run(s): "
              "those figures are limited by the client, not the server; rerun with --clients 2"
              + (" or --client wrk." if args.client == "httpx" else "."))
    else:
        print(f"The client ({args.client}) was not the bottleneck (client CPU below {CLIENT_BOUND:.0%} of a core "
              "in every run).")
    busy = [r for r in rows if r["loadavg_1min_before"] > (os.cpu_count() or 1)]
    if busy:
        print(f"WARNING: the machine was busy (1-min load average above {os.cpu_count()}) before {len(busy)} "
              "run(s): req/s and latency are low there; server CPU ms/req is the figure to compare.")
    if (os.cpu_count() or 1) <= 2:
        print(f"Client and server share {os.cpu_count()} cores: client CPU is taken from the server.")
    print(f"results: {path}  ({payload['total_s']:.0f} s)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == CLIENT_PROCESS:
        client_main(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == HOSTILE_PROCESS:
        hostile_main(sys.argv[2])
    else:
        try:
            main()
        except KeyboardInterrupt:
            print("interrupted: servers stopped, no results written", file=sys.stderr)
            sys.exit(130)
