"""A throwaway single-node Slurm cluster on this machine, for tests (as root, no systemd needed).

munged, slurmctld and slurmd run in the foreground as children of this process, stopped by pid.
Their key, sockets, config, state, pids and logs all live under one directory; nothing system-wide
is written. Slurm finds the config through SLURM_CONF, except where snakemake's slurm-jobstep
plugin strips SLURM_* variables before its nested `srun`: wrappers in `bin/` (put first on PATH)
set it again for every client command. Accounting is off (no slurmdbd): jobs stay in
`squeue --states=all` for MinJobAge seconds after they end, which is what status queries read.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "sinfo", "sacct", "scancel")
PARTITION = "debug"
MIN_JOB_AGE = 600  # seconds a finished job stays visible to squeue


def _which(name: str) -> str | None:
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")  # daemons live in sbin


def unavailable() -> str | None:
    """Why a cluster cannot be started here, or None."""
    missing = [name for name in DAEMONS + CLIENTS if not _which(name)]
    if missing:
        return f"Slurm/munge not installed (missing {', '.join(missing)}; see .ci/slurm_setup.sh)"
    if os.geteuid() != 0:
        return "starting slurmd and munged needs root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.conf = self.root / "slurm.conf"
        self.bin = self.root / "bin"
        self.logs = self.root / "log"
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict:
        """The environment for client commands (and for snakemake submitting to this cluster)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": f"{self.bin}:{os.environ['PATH']}"}

    def run(self, *command: str) -> str:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=True, timeout=30).stdout

    def start(self, timeout: float = 30) -> "SlurmCluster":
        for sub in ("state", "spool", "munge", "log", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        munge = self.root / "munge"
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        socket_path = munge / "munge.socket"
        self._spawn("munged", "--foreground", "--force", f"--key-file={key}", f"--socket={socket_path}",
                    f"--pid-file={munge / 'munged.pid'}", f"--seed-file={munge / 'munged.seed'}",
                    "--log-file=/dev/null")  # in the foreground it logs to stderr, like slurmctld -D and slurmd -D
        self._wait(socket_path.exists, timeout, "munged did not create its socket")

        host = socket.gethostname().split(".")[0]
        node = next(line for line in self.run(_which("slurmd"), "-C").splitlines() if line.startswith("NodeName="))
        self.conf.write_text(f"""\
ClusterName=ctrbench-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket_path}
StateSaveLocation={self.root / 'state'}
SlurmdSpoolDir={self.root / 'spool'}
SlurmctldPidFile={self.root / 'slurmctld.pid'}
SlurmdPidFile={self.root / 'slurmd.pid'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge={MIN_JOB_AGE}
ReturnToService=2
MailProg=/bin/true
MpiDefault=none
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        for client in CLIENTS:
            wrapper = self.bin / client
            wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {_which(client)} "$@"\n')
            wrapper.chmod(0o755)
        self._spawn("slurmctld", "-D", "-i", "-f", str(self.conf))
        self._spawn("slurmd", "-D", "-f", str(self.conf))
        self._wait(self._node_idle, timeout, "the node did not become idle")
        return self

    def stop(self) -> None:
        if "slurmd" in self.procs:  # jobs left by a failed test: cancel them and let slurmd end their processes
            try:
                self.run("scancel", f"--partition={PARTITION}")
                self._wait(lambda: not self.run("squeue", "--noheader", "--states=RUNNING,COMPLETING"), 15, "")
            except (subprocess.SubprocessError, RuntimeError):
                pass
        for name, proc in reversed(self.procs.items()):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
                         for p in sorted(self.logs.iterdir()))

    def __enter__(self) -> "SlurmCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def _node_idle(self) -> bool:
        return self.run("sinfo", "--noheader", "--format=%t").strip() == "idle"

    def _spawn(self, daemon: str, *args: str) -> None:
        with open(self.logs / f"{daemon}.log", "w") as log:
            self.procs[daemon] = subprocess.Popen([_which(daemon), *args], env=self.env, stdout=log,
                                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _wait(self, ready, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.log_tail()}")
            try:
                if ready():
                    return
            except subprocess.SubprocessError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{message} within {timeout} s\n{self.log_tail()}")
