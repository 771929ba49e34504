"""Data-parallel training with torch.distributed, launched by torchrun (or ``movierec train --nproc N``).

``movierec train MODEL ... --nproc N`` starts N copies of the same command through
``torch.distributed.run`` (torchrun's own code) on this machine; the same command runs unchanged under
``torchrun --nproc-per-node N -m movierec train MODEL ...`` on one or many machines. Each copy reads the
environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK) and joins the process group: NCCL on GPUs (each
process takes the GPU of its local rank), gloo on CPUs. What each rank does in training is in
:mod:`movierec.training.trainer`.
"""

from __future__ import annotations

import os
import sys

import torch

from movierec.errors import MovieRecError

_LAUNCHER_PID = "MOVIEREC_LAUNCHER_PID"  # set by launch(): the pid its worker processes must outlive


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def die_with_launcher() -> None:
    """In a worker that ``movierec train --nproc`` started: end this process when the launcher ends, even by
    SIGKILL, so that no orphaned worker goes on writing ``--out`` (Linux: the parent-death signal; elsewhere a
    no-op). A launcher already gone before this ran ends the worker at once."""
    pid = os.environ.get(_LAUNCHER_PID)
    if not pid or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl
        return
    if os.getppid() != int(pid):  # the launcher died before the signal was armed
        os._exit(130)


def launched() -> bool:
    """True in a process started by torchrun for a run of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def holds_output_lock() -> bool:
    """Whether this process locks a run's outputs: every process but a worker of :func:`launch` (its launcher holds
    the lock) or a torchrun rank other than 0 (rank 0 alone writes)."""
    if _LAUNCHER_PID in os.environ:
        return not launched()
    return not launched() or os.environ.get("RANK") == "0"


def setup(device: str) -> tuple[int, int, str]:
    """Join the process group of this torchrun process; returns (rank, world size, this rank's device)."""
    import torch.distributed as dist

    from movierec.training.trainer import resolve_device

    die_with_launcher()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        if device not in ("auto", "cuda"):
            raise MovieRecError(f"--device {device}: under torchrun give --device cuda (each process takes the "
                                "GPU of its local rank) or cpu")
        if local >= torch.cuda.device_count():
            raise MovieRecError(f"local rank {local} has no GPU ({torch.cuda.device_count()} on this machine); "
                                "start at most one process per GPU")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif dev.type != "cpu":
        raise MovieRecError(f"--device {device}: data-parallel training runs on CUDA GPUs or CPUs")
    else:
        device = "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return rank, world, device


def teardown() -> None:
    """Leave the process group together: every rank waits for the others (rank 0 validates and writes the run
    folder after the last collective) before the group is destroyed. A rank that leaves while another still
    works can abort in gloo's shutdown ("terminate called without an active exception")."""
    import gc

    import torch.distributed as dist

    if dist.is_initialized():
        gc.collect()  # the DistributedDataParallel wrappers of a run's fits go while the group still exists
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def check_nproc(nproc: int, device: str) -> None:
    """Refuse, before any work, a process count this machine cannot run (one line)."""
    if nproc < 1:
        raise MovieRecError(f"--nproc {nproc}: must be at least 1")
    if launched():
        raise MovieRecError("--nproc: this command already runs under torchrun; leave --nproc out")
    from movierec.training.trainer import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        if device not in ("auto", "cuda"):
            raise MovieRecError(f"--device {device} with --nproc: give --device cuda (process k takes GPU k) or cpu")
        if nproc > torch.cuda.device_count():
            raise MovieRecError(f"--nproc {nproc}: this machine has {torch.cuda.device_count()} GPU(s); "
                                "use at most that many, or --device cpu")
    elif dev.type != "cpu":
        raise MovieRecError(f"--device {device}: data-parallel training runs on CUDA GPUs or CPUs")
    elif nproc > cpu_cores():
        raise MovieRecError(f"--nproc {nproc}: this process may use {cpu_cores()} CPU core(s); start at most that "
                            "many processes (each needs a core)")


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` with its ``--nproc N`` / ``--nproc=N`` removed."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def launch(nproc: int, argv: list[str]) -> None:
    """Run ``python -m movierec ARGV`` in ``nproc`` processes on this machine with torchrun; wait for them.

    Raises MovieRecError naming the first process that failed (its own error line is printed above).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if "OMP_NUM_THREADS" not in os.environ:  # torchrun would set 1 and say so; share the cores instead
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    os.environ[_LAUNCHER_PID] = str(os.getpid())  # its workers end when this process ends (die_with_launcher)
    args = get_args_parser().parse_args(["--standalone", "--nproc-per-node", str(nproc), "--module",
                                         "movierec", *argv])
    try:
        run(args)
    except SignalException:  # Ctrl-C (or a kill): torchrun stopped the processes; rank 0 said what was kept
        raise SystemExit(130) from None
    except ChildFailedError as e:
        rank, failure = min(e.failures.items()) if e.failures else (0, None)
        code = failure.exitcode if failure is not None else "?"
        raise MovieRecError(f"training process {rank} of {nproc} failed (exit code {code}); its error is "
                            "above") from None
    sys.stdout.flush()
