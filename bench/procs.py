"""Child processes of the benchmark: started pinned, waited for, measured and always stopped.

design: every child runs in a session of its own, so stopping one reaches the whole process
group (a gunicorn master and its workers) by the child's own id; each also gets
PR_SET_PDEATHSIG, so children die with the benchmark even if it is killed outright. CPU
pinning and the file-descriptor limit are applied in `preexec_fn`, before `exec`, so the
gunicorn workers forked later inherit them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
NOFILE = 65_536
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_nofile(wanted: int = NOFILE) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def _preexec(cpus: set[int]) -> Callable[[], None]:
    def prepare() -> None:
        os.sched_setaffinity(0, cpus)
        raise_nofile()
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return prepare


class Processes:
    """Owns every child the benchmark starts; `close()` stops those still running."""

    def __init__(self) -> None:
        self._children: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def spawn(
        self,
        command: Sequence[str],
        cpus: set[int],
        *,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        stdout: Any = subprocess.DEVNULL,
        stderr: Any = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start a child; `env`, when given, is its whole environment (plus PYTHONPATH)."""
        child = subprocess.Popen(
            list(command),
            cwd=cwd,
            env={**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)},
            stdout=stdout,
            stderr=stderr,
            preexec_fn=_preexec(cpus),
            start_new_session=True,
        )
        self._children.append(child)
        return child

    def run(self, command: Sequence[str], cpus: set[int], timeout: float) -> str:
        """Run a child to completion (bounded by `timeout`) and return its stdout."""
        child = self.spawn(command, cpus, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(child, grace=1.0)
            raise RuntimeError(f"{Path(command[0]).name} ran longer than {timeout:.0f} s") from None
        finally:
            self._forget(child)
        if child.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{command[:3]} exited {child.returncode}: {' | '.join(tail)}")
        return out.decode()

    def stop(self, child: subprocess.Popen[bytes], grace: float = 15.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # workers left behind by their master
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(5)
        self._forget(child)

    def close(self) -> None:
        for child in list(self._children):
            self.stop(child, grace=5.0)

    def _forget(self, child: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ValueError):
            self._children.remove(child)


def wait_for_line(child: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bytes:
    """Read the child's stdout until a line containing `marker`, within `timeout` seconds."""
    assert child.stdout is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([child.stdout], [], [], 0.1)
        if ready:
            line = child.stdout.readline()
            if not line and child.poll() is not None:
                break
            seen += line
            if marker in line:
                return line
        elif child.poll() is not None:
            break
    raise RuntimeError(f"child {child.pid} never printed {marker!r}; got {seen[-500:]!r}")


def wait_healthy(url: str, child: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll GET `url` until it answers 200, the child exits, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise RuntimeError(f"gateway exited with {child.returncode} while starting: {tail}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} not healthy within {timeout:.0f} s")


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def proc_status_kib(pid: int, *keys: str) -> dict[str, int]:
    """Fields such as VmRSS and VmHWM from /proc/<pid>/status, in KiB (0 when gone)."""
    values = dict.fromkeys(keys, 0)
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in values:
                values[name] = int(rest.split()[0])
    return values


def pss_kib(pid: int) -> int:
    """Proportional set size (shared pages split between the processes sharing them)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


@dataclass
class Sample:
    at: float  # time.monotonic()
    master_kib: int
    workers_kib: list[int]
    extra: int = 0  # whatever the sampler's probe returned (a spool size, say)

    @property
    def worker_kib(self) -> int:
        return max(self.workers_kib, default=0)

    @property
    def total_kib(self) -> int:
        return self.master_kib + sum(self.workers_kib)


@dataclass
class MemorySampler:
    """Samples VmRSS of a gunicorn master and its workers every `interval` seconds."""

    pid: int
    interval: float = 0.05
    probe: Callable[[], int] | None = None
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.take()

    def take(self) -> Sample:
        workers = [proc_status_kib(p, "VmRSS")["VmRSS"] for p in children_of(self.pid)]
        sample = Sample(
            at=time.monotonic(),
            master_kib=proc_status_kib(self.pid, "VmRSS")["VmRSS"],
            workers_kib=workers,
            extra=self.probe() if self.probe else 0,
        )
        self.samples.append(sample)
        return sample

    def between(self, start: float = 0.0, end: float = float("inf")) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]

    def high_water(self) -> dict[str, int]:
        """VmHWM (the kernel's own peak RSS) of the master and the largest worker, in KiB."""
        workers = [proc_status_kib(p, "VmHWM")["VmHWM"] for p in children_of(self.pid)]
        return {
            "master": proc_status_kib(self.pid, "VmHWM")["VmHWM"],
            "worker": max(workers, default=0),
        }

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.take()


def dir_size(path: Path) -> int:
    """Bytes in the files directly or indirectly under `path` (0 when it does not exist)."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(folder, name)).st_size
    return total


def python_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
