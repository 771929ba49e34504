#!/usr/bin/env bash
# The GPU benchmark in one command: NeuMF throughput at two batch sizes, evaluation, EASE, 2-GPU torchrun.
#
#   bash benchmarks/gpu.sh                      # on a CUDA machine; < 8 min; writes $OUT/gpu.json when OUT is
#                                               # set, else benchmarks/results/gpu.json
#   bash benchmarks/gpu.sh --small              # tiny data on the CPU (CI); benchmarks/results/gpu_small.json
#   bash benchmarks/gpu.sh --out FILE [...]     # any other option goes to benchmarks/bench_gpu.py
#
# Nothing is installed when the checkout's code imports as it is: src/ goes first on PYTHONPATH, so no
# `pip install -e .` is needed. Only when an import fails does it try `pip install` of the missing runtime
# dependencies (never torch), with short network time-outs, and carries on whatever pip says. The python
# is $PYTHON when set, else .venv/bin/python when present, else python3 (without --small, the first of
# those whose torch sees a CUDA GPU). bench_gpu.py rewrites its JSON after every step and runs under
# `timeout`; if it still dies or refuses (no CUDA), this script writes (or completes) the JSON with the
# reason, so there is always exactly one JSON, and exits with bench_gpu.py's status.

set -u

START=$SECONDS
LIMIT_S=${GPU_SH_LIMIT_S:-450}   # the whole script, setup included (the caller's hard limit is 600 s)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

# ------------------------------------------------------------------------------------------ arguments
SMALL=0
OUTFILE=""
BUDGET_GIVEN=0
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --small) SMALL=1; ARGS+=("$1") ;;
    --out) OUTFILE="${2:-}"; shift ;;
    --out=*) OUTFILE="${1#--out=}" ;;
    --budget-s|--budget-s=*) BUDGET_GIVEN=1; ARGS+=("$1") ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
if [ -z "$OUTFILE" ]; then
  if [ -n "${OUT:-}" ]; then
    OUTFILE="$OUT/gpu.json"
  elif [ "$SMALL" = 1 ]; then
    OUTFILE="$ROOT/benchmarks/results/gpu_small.json"
  else
    OUTFILE="$ROOT/benchmarks/results/gpu.json"
  fi
fi
case "$OUTFILE" in /*) ;; *) OUTFILE="$PWD/$OUTFILE" ;; esac
mkdir -p "$(dirname "$OUTFILE")"

export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

# ------------------------------------------------------------------------------------------ python
CANDIDATES=()
[ -n "${PYTHON:-}" ] && CANDIDATES+=("$PYTHON")
[ -x "$ROOT/.venv/bin/python" ] && CANDIDATES+=("$ROOT/.venv/bin/python")
command -v python3 >/dev/null 2>&1 && CANDIDATES+=("$(command -v python3)")
PY=""
if [ "$SMALL" = 0 ]; then
  for c in "${CANDIDATES[@]}"; do
    if "$c" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
      PY="$c"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  for c in "${CANDIDATES[@]}"; do
    if "$c" -c "import torch" >/dev/null 2>&1; then PY="$c"; break; fi
  done
fi
[ -z "$PY" ] && [ ${#CANDIDATES[@]} -gt 0 ] && PY="${CANDIDATES[0]}"
[ -z "$PY" ] && PY=python3
echo "gpu.sh: python $PY; output $OUTFILE" >&2

# ------------------------------------------------------------------------------------------ imports
SETUP="PYTHONPATH=src; python $PY"
IMPORTS="import movierec.data.load, movierec.data.splits, movierec.data.synthetic, movierec.models.ncf, \
movierec.models.ease, movierec.evaluation, movierec.cli"
if ! "$PY" -c "$IMPORTS" >/dev/null 2>&1; then
  MISSING="$("$PY" - "$ROOT/pyproject.toml" <<'EOF' 2>/dev/null
import importlib.util, re, sys
text = open(sys.argv[1]).read()
block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", text, re.S | re.M)
names = [re.split(r"[<>=!~;\[ ]", s, maxsplit=1)[0] for s in re.findall(r'"([^"]+)"', block.group(1))] if block else []
print(" ".join(n for n in names if n != "torch" and importlib.util.find_spec(n.replace("-", "_").lower()) is None))
EOF
)"
  if [ -n "$MISSING" ]; then
    echo "gpu.sh: missing dependencies: $MISSING; trying pip (60 s at most)" >&2
    if timeout 60 "$PY" -m pip install --disable-pip-version-check --no-input --timeout 10 --retries 0 \
        $MISSING >&2; then
      SETUP="$SETUP; pip installed: $MISSING"
    else
      SETUP="$SETUP; pip install failed or timed out for: $MISSING"
    fi
  fi
  if ! "$PY" -c "$IMPORTS" >/dev/null 2>&1; then
    SETUP="$SETUP; movierec still does not import: $("$PY" -c "$IMPORTS" 2>&1 | tail -n 1)"
  fi
fi
export GPU_SH_SETUP="$SETUP"

# ------------------------------------------------------------------------------------------ run
LEFT=$(( LIMIT_S - (SECONDS - START) - 5 ))
KILL_AFTER=10
RUN_TIMEOUT=$(( LEFT - KILL_AFTER ))
[ "$RUN_TIMEOUT" -lt 30 ] && RUN_TIMEOUT=30
if [ "$BUDGET_GIVEN" = 0 ]; then
  BUDGET=$(( RUN_TIMEOUT - 35 ))
  if [ "$SMALL" = 1 ]; then MAXB=300; else MAXB=420; fi
  [ "$BUDGET" -gt "$MAXB" ] && BUDGET=$MAXB
  [ "$BUDGET" -lt 20 ] && BUDGET=20
  ARGS+=(--budget-s "$BUDGET")
fi
ERRLOG="$(mktemp "${TMPDIR:-/tmp}/gpu-sh-stderr.XXXXXX")"
rm -f "$OUTFILE"
timeout --kill-after="$KILL_AFTER" "$RUN_TIMEOUT" "$PY" "$ROOT/benchmarks/bench_gpu.py" "${ARGS[@]}" \
  --out "$OUTFILE" 2> >(tee "$ERRLOG" >&2)
RC=$?
wait  # the tee above

# ------------------------------------------------------------------------------------------ always a JSON
if [ "$RC" != 0 ] || [ ! -s "$OUTFILE" ]; then
  WRITER="$PY"
  "$WRITER" -c "pass" >/dev/null 2>&1 || WRITER=python3
  GPU_SH_RC="$RC" GPU_SH_OUT="$OUTFILE" GPU_SH_ERRLOG="$ERRLOG" GPU_SH_SMALL="$SMALL" \
  GPU_SH_TIMEOUT="$RUN_TIMEOUT" GPU_SH_WALL="$(( SECONDS - START ))" "$WRITER" - <<'EOF'
import datetime, json, os, platform
out, rc = os.environ["GPU_SH_OUT"], int(os.environ["GPU_SH_RC"])
try:
    err = [ln for ln in open(os.environ["GPU_SH_ERRLOG"], errors="replace").read().splitlines() if ln.strip()]
except OSError:
    err = []
why = {124: f"killed by timeout after {os.environ['GPU_SH_TIMEOUT']} s",
       137: "killed (SIGKILL: timeout or out of memory)"}.get(rc, f"bench_gpu.py exited with status {rc}")
last = err[-1] if err else ""
try:
    data = json.load(open(out))
except (OSError, ValueError):
    data = {"machine": {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
                        "hostname": platform.node(), "cpu_count": os.cpu_count(),
                        "setup": os.environ.get("GPU_SH_SETUP")},
            "small": os.environ["GPU_SH_SMALL"] == "1", "shape": None, "results": {}, "errors": {},
            "wall_s": float(os.environ["GPU_SH_WALL"])}
data.setdefault("errors", {})["_gpu_sh"] = f"{why}: {last}" if last else why
data["exit_code"] = rc
data["complete"] = False
data["stderr_tail"] = "\n".join(err[-30:])
open(out, "w").write(json.dumps(data, indent=2) + "\n")
EOF
fi
rm -f "$ERRLOG"
echo "gpu.sh: wrote $OUTFILE (exit $RC, $(( SECONDS - START )) s)" >&2
exit "$RC"
