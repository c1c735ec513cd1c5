"""Child processes: each measured system runs alone in its own process, and its CPU time comes
from ``wait4`` on that process only (never the bench's own work).

Its peak RSS comes from the child's own ``VmHWM`` (/proc/<pid>/status), read while it runs, not
from wait4's ``ru_maxrss``: Linux carries the pre-exec memory's high-water mark into
``ru_maxrss`` at exec, and subprocess starts children with vfork, so ``ru_maxrss`` reports at
least the bench process's own RSS (a bench holding 500 MiB made a 10 MiB child read 511 MiB).
``ru_maxrss`` is the fallback where /proc is missing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PY = sys.executable
DUMMY_AWS = {
    # Never real AWS: dummy credentials, and every client gets an explicit endpoint_url.
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class ChildResult:
    argv: list[str]
    returncode: int
    wall: float
    user: float
    system: float
    maxrss_kb: int
    stderr_tail: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return self.user + self.system


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FANOUT_", "AWS_"))}
    env.update(DUMMY_AWS)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    env.update(extra)
    return env


class Child:
    """A started child; ``wait`` reaps it with wait4 (its own rusage)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self.argv = list(argv)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            env=dict(env),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        self.peak_rss_kb = 0  # the most VmHWM read so far (see the module docstring)
        self.ready = threading.Event()
        self._ready_text: str | None = None
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if self._ready_text and self._ready_text in line:
                self.ready.set()
        self.ready.set()

    def wait_for(self, text: str, timeout: float) -> bool:
        self._ready_text = text
        if any(text in line for line in self.stderr):
            return True
        return self.ready.wait(timeout) and any(text in line for line in self.stderr)

    def sample_rss(self) -> int:
        """The child's RSS now (KiB; 0 once it has exited), updating ``peak_rss_kb``."""
        rss = 0
        with (
            contextlib.suppress(OSError, ValueError, IndexError),
            open(f"/proc/{self.proc.pid}/status") as status,
        ):
            for line in status:
                if line.startswith("VmHWM:"):
                    self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return rss

    def running(self) -> bool:
        """Whether the child has not exited yet, without reaping it: ``Popen.poll`` (and
        ``send_signal``/``kill``, which poll first) would reap it, and ``wait``'s ``wait4``
        would then fail with ChildProcessError and lose its rusage."""
        if self.proc.returncode is not None:
            return False
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        return info is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` unless the child was reaped (an exited, unreaped child is a zombie:
        its pid cannot be reused yet, so this never hits another process)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def terminate(self) -> None:
        self.sample_rss()
        self.signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> ChildResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.sample_rss()  # VmHWM only grows: a read every 20 ms misses only the exit
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                self.signal(signal.SIGKILL)
                deadline = None
            time.sleep(0.02)
        wall = time.monotonic() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        out = self.proc.stdout.read() if self.proc.stdout else ""
        self._reader.join(timeout=2)
        return ChildResult(
            self.argv,
            self.proc.returncode,
            wall,
            usage.ru_utime,
            usage.ru_stime,
            self.peak_rss_kb or usage.ru_maxrss,
            "".join(self.stderr[-15:]),
            out.splitlines(),
        )


@contextlib.contextmanager
def stub_server(
    pool_file: Path,
    cwd: Path,
    max_wait: float = 0.5,
    latency_ms: float = 0.0,
    rate: float | None = None,
    start_delay: float = 1.0,
) -> Iterator[tuple[str, Child]]:
    """The stub in its own process, answering after ``latency_ms`` (+-25%), its pool due at
    ``rate`` events/s if given (open loop); yields (endpoint URL, child)."""
    open_loop = ("--rate", str(rate), "--start-delay", str(start_delay)) if rate else ()
    child = Child(
        [
            *(PY, "-m", "bench.stub", "--pool", str(pool_file)),
            *("--max-wait", str(max_wait), "--latency-ms", str(latency_ms)),
            *open_loop,
        ],
        child_env({}),
        cwd,
    )
    try:
        assert child.proc.stdout is not None
        line = child.proc.stdout.readline()
        if not line.startswith("PORT "):
            child.terminate()
            raise RuntimeError(f"stub did not start: {line!r} {''.join(child.stderr)}")
        yield f"http://127.0.0.1:{int(line.split()[1])}", child
    finally:
        child.terminate()
        child.wait(timeout=10)
