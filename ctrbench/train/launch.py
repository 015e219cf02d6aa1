"""Start a training job: in this process, or as N data-parallel processes under ``torchrun``.

``training.distributed.processes`` (default 1) is the number of processes: on a GPU node one per GPU
the job was given (on Slurm, ``resources.train.gpu``), on a CPU any number (gloo backend). With more
than one, the job runs ``python -m torch.distributed.run --standalone --nproc-per-node N -m
ctrbench.train.launch SPEC`` (one node; torchrun picks a free port), each process calling
``trainer.train`` with the arguments in SPEC, a JSON file staged beside the outputs. The workers
import ctrbench from the same checkout as this process, and split the job's threads between them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch

import ctrbench
from ctrbench.train.trainer import TrainOutputs, train

log = logging.getLogger(__name__)


def processes_of(training: dict) -> int:
    return int((training.get("distributed") or {}).get("processes", 1))


def train_job(*, threads: int, log_path: str | Path | None = None, **arguments) -> None:
    """Train as ``trainer.train(**arguments)`` with ``threads`` CPU threads in all, in one or several processes."""
    processes = processes_of(arguments["training"])
    if processes == 1:
        torch.set_num_threads(threads)
        train(**arguments)
        return
    outputs: TrainOutputs = arguments["outputs"]
    spec = {
        **arguments,
        "outputs": {k: str(v) for k, v in asdict(outputs).items()},
        "train_path": str(arguments["train_path"]),
        "valid_path": str(arguments["valid_path"]),
        "feature_map_path": str(arguments["feature_map_path"]),
        "threads": max(1, threads // processes),
        "log_path": None if log_path is None else str(log_path),
    }
    checkout = str(Path(ctrbench.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))}
    env["OMP_NUM_THREADS"] = str(spec["threads"])
    # named as a partial file of train_metrics.json, so that clear_stale_partials removes one a killed job left
    metrics = Path(outputs.metrics)
    spec_path = metrics.with_name(f".{metrics.name}.{os.getpid()}.spec.partial")
    try:
        spec_path.write_text(json.dumps(spec))
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", "ctrbench.train.launch", str(spec_path),
        ]  # fmt: skip
        log.info("starting %d training processes: %s", processes, " ".join(command))
        done = subprocess.run(command, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"distributed training ({processes} processes) failed with exit code {done.returncode}; see the log above")
    finally:
        spec_path.unlink(missing_ok=True)  # scaffolding, never an output


def _worker(spec_path: str) -> None:
    """One process of a ``torchrun`` job: rank 0 logs to the job's log file, the others to stderr."""
    spec = json.loads(Path(spec_path).read_text())
    rank = int(os.environ.get("RANK", "0"))
    log_path = spec.pop("log_path")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:  # appended to (O_APPEND): rank 0 logs the run, every other rank its errors
        handler = logging.FileHandler(log_path, mode="a")
        handler.setLevel(logging.INFO if rank == 0 else logging.ERROR)
        handlers.append(handler)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s rank {rank} %(levelname)s %(name)s: %(message)s", handlers=handlers)
    torch.set_num_threads(spec.pop("threads"))
    spec["outputs"] = TrainOutputs(**{k: Path(v) for k, v in spec["outputs"].items()})
    from ctrbench.train.distributed import Distributed

    try:
        train(**spec)
    except Exception:
        # the traceback into the job's log (rank 0's handler), then torchrun reports the failed rank
        log.exception("training process %d failed", rank)
        raise
    finally:
        Distributed(world_size=int(os.environ.get("WORLD_SIZE", "1"))).close()


if __name__ == "__main__":
    _worker(sys.argv[1])
