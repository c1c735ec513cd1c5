#!/usr/bin/env python3
"""LocalStack (SQS, EventBridge, CloudFormation) on 127.0.0.1 for the e2e tests and the bench.

    python3 bench/localstack.py start | stop | status      (make localstack / localstack-stop)

Host mode (the default) needs no Docker: on first use LocalStack is installed from PyPI into
.localstack/venv with a Python 3.13 interpreter (pyenv's or one on PATH; LocalStack needs 3.13),
then runs in the background with its log and pid file in .localstack/. ``start`` waits until
SQS and EventBridge are available and does nothing if they already are; ``stop`` stops only an
instance this script started on that port, with its whole process group.
LOCALSTACK_MODE=docker runs the official image instead, where a Docker engine is usable.

Environment: LOCALSTACK_PORT (4566), LOCALSTACK_MODE (host | docker), LOCALSTACK_PYTHON (a
Python >= 3.13 to install with), LOCALSTACK_START_TIMEOUT (seconds, 180), LOCALSTACK_IMAGE.
Standard library only, so it runs with any python3 before the project's venv exists.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".localstack"
VENV = STATE / "venv"
# Pinned: newer cbor2 / pyOpenSSL / cryptography releases break LocalStack's start.
REQUIREMENTS = (
    "localstack-core[runtime]==2026.3.0",
    "cbor2<5.7",
    "cryptography>=42,<44",
    "pyopenssl==24.2.1",
    "service_identity<25",
)
# Tags after 4.14.0 of the official image need a LOCALSTACK_AUTH_TOKEN (passed on if set).
DEFAULT_IMAGE = "localstack/localstack:4.14.0"
# cloudformation, iam, cloudwatch and sts: tests/e2e/test_cloudformation_e2e.py deploys
# deploy/cloudformation/fanout-queues.yaml (queue policy, IAM managed policy, alarms).
SERVICES = ("sqs", "events", "cloudformation", "iam", "cloudwatch", "sts")

PORT = int(os.environ.get("LOCALSTACK_PORT") or 4566)
MODE = os.environ.get("LOCALSTACK_MODE") or "host"
TIMEOUT = float(os.environ.get("LOCALSTACK_START_TIMEOUT") or 180)
HEALTH_URL = f"http://127.0.0.1:{PORT}/_localstack/health"
LOG = STATE / f"localstack-{PORT}.log"
PID_FILE = STATE / f"localstack-{PORT}.pid"
CONTAINER = f"fanout-localstack-{PORT}"


def say(message: str) -> None:
    print(f"localstack: {message}", flush=True)


def die(message: str) -> None:
    print(f"localstack: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def health() -> dict[str, str] | None:
    """Service states from /_localstack/health, or None when nothing answers there."""
    try:
        with urllib.request.urlopen(HEALTH_URL, timeout=2) as response:
            return dict(json.load(response).get("services", {}))
    except (OSError, ValueError):
        return None


def healthy() -> bool:
    services = health() or {}
    return all(services.get(name) in ("available", "running") for name in SERVICES)


def read_pid() -> int | None:
    """The pid in this port's pid file if that process is still alive."""
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def log_tail(lines: int = 15) -> str:
    try:
        text = LOG.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text) or "    (empty)"


# --- install -------------------------------------------------------------------------------


def pyenv_root() -> Path:
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def find_python() -> str:
    """A Python >= 3.13 that actually runs (pyenv's shims fail without PYENV_VERSION)."""
    candidates = [os.environ.get("LOCALSTACK_PYTHON", "")]
    candidates += sorted(str(p) for p in pyenv_root().glob("versions/3.13*/bin/python3.13"))
    candidates += [shutil.which("python3.13") or "", shutil.which("python3") or ""]
    check = "import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)"
    for candidate in filter(None, candidates):
        try:
            ok = subprocess.run([candidate, "-c", check], capture_output=True, check=False)
        except OSError:
            continue
        if ok.returncode == 0:
            return candidate
    die(
        "LocalStack needs Python >= 3.13 and none was found (looked at LOCALSTACK_PYTHON, "
        f"{pyenv_root()}/versions/3.13*, python3.13 and python3 on PATH): install one, e.g. "
        "`pyenv install 3.13`, or point LOCALSTACK_PYTHON at it"
    )
    raise AssertionError  # unreachable: die() exits


def install() -> Path:
    """The venv's python; (re)installs when the pinned requirements changed."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    wanted = "\n".join(REQUIREMENTS)
    if stamp.is_file() and stamp.read_text() == wanted and python.exists():
        return python
    base = find_python()
    say(f"first use: installing LocalStack into {VENV} with {base} (a few minutes)")
    started = time.monotonic()
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    say(f"installed in {time.monotonic() - started:.0f} s")
    return python


# --- host mode -----------------------------------------------------------------------------


def start_host() -> None:
    if read_pid() is not None:  # started earlier and still coming up
        wait_healthy(lambda: read_pid() is not None)
        return
    python = install()
    volume = STATE / f"volume-{PORT}"
    volume.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "RUNTIME_COMPONENTS": "aws",
        "GATEWAY_LISTEN": f"127.0.0.1:{PORT}",
        "SERVICES": ",".join(SERVICES),
        "DNS_ADDRESS": "0",  # no DNS server: it would need port 53
        "LOCALSTACK_VOLUME_DIR": str(volume),
        # Inside a container (CI runners, dev containers) LocalStack would otherwise take the
        # container layout and share /var/lib/localstack and /tmp/localstack between instances.
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": str(volume),
    }
    with LOG.open("wb") as log:
        process = subprocess.Popen(
            [str(python), "-m", "localstack.runtime.main"],
            cwd=STATE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop takes all of it down
        )
    PID_FILE.write_text(f"{process.pid}\n")
    say(f"started (pid {process.pid}, log {LOG})")
    wait_healthy(lambda: process.poll() is None)  # polled: a dead child stays a zombie


def stop_host() -> bool:
    """Stop the process group in the pid file, then any leftover of ours on this port."""
    pid = read_pid()
    PID_FILE.unlink(missing_ok=True)
    groups = {pid} if pid is not None else set()
    groups |= {os.getpgid(p) for p in leftovers() if pid_alive(p)}
    for group in groups:
        terminate(group)
        say(f"stopped (process group {group})")
    return bool(groups)


def leftovers() -> list[int]:
    """LocalStack processes run from our venv and bound to this port (e.g. pid file lost)."""
    ours = str(VENV / "bin" / "python").encode()
    listen = f"GATEWAY_LISTEN=127.0.0.1:{PORT}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0] == ours and listen in environ:
            found.append(int(proc.name))
    return found


def terminate(group: int) -> None:
    for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


# --- docker mode ---------------------------------------------------------------------------


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("docker") or "docker"
    return subprocess.run([executable, *args], capture_output=True, text=True, check=check)


def docker_usable() -> bool:
    return shutil.which("docker") is not None and docker("info", check=False).returncode == 0


def container_exists() -> bool:
    return docker_usable() and docker("inspect", CONTAINER, check=False).returncode == 0


def start_docker() -> None:
    if not docker_usable():
        die(
            "LOCALSTACK_MODE=docker but `docker info` fails: no usable Docker engine (unset "
            "LOCALSTACK_MODE to run LocalStack on the host instead)"
        )
    if not container_exists():
        image = os.environ.get("LOCALSTACK_IMAGE") or DEFAULT_IMAGE
        token = ["-e", "LOCALSTACK_AUTH_TOKEN"] if os.environ.get("LOCALSTACK_AUTH_TOKEN") else []
        publish = f"127.0.0.1:{PORT}:4566"
        services = f"SERVICES={','.join(SERVICES)}"
        docker("run", "-d", "--name", CONTAINER, "-p", publish, "-e", services, *token, image)
        say(f"started container {CONTAINER} ({image}); its log: docker logs {CONTAINER}")
    wait_healthy(container_exists)


def stop_docker() -> bool:
    if not container_exists():
        return False
    docker("rm", "--force", CONTAINER)
    say(f"removed container {CONTAINER}")
    return True


# --- commands ------------------------------------------------------------------------------


def wait_healthy(still_running: Callable[[], bool]) -> None:
    started = time.monotonic()
    while time.monotonic() - started < TIMEOUT:
        if healthy():
            say(f"healthy at http://127.0.0.1:{PORT} after {time.monotonic() - started:.0f} s")
            return
        if not still_running():
            die(f"LocalStack exited during start; see {LOG}, last lines:\n{log_tail()}")
        time.sleep(0.5)
    stop()
    die(
        f"LocalStack did not report {' and '.join(SERVICES)} available at {HEALTH_URL} within "
        f"{TIMEOUT:.0f} s (LOCALSTACK_START_TIMEOUT) and was stopped; see {LOG}, last lines:\n"
        f"{log_tail()}"
    )


def start() -> None:
    if healthy():
        say(f"already healthy at http://127.0.0.1:{PORT}")
        return
    if MODE not in ("host", "docker"):
        die(f"LOCALSTACK_MODE must be host or docker, not {MODE!r}")
    STATE.mkdir(exist_ok=True)
    starting = read_pid() is not None if MODE == "host" else container_exists()
    if not starting and port_taken():
        die(
            f"port {PORT} is taken by something that is not a healthy LocalStack with "
            f"{' and '.join(SERVICES)}: stop it, or choose another LOCALSTACK_PORT"
        )
    if MODE == "docker":
        start_docker()
    else:
        start_host()


def stop() -> None:
    if not (stop_host() | stop_docker()):
        other = " (something answers there: not started by this script, left alone)"
        say(f"nothing of ours runs on port {PORT}" + (other if port_taken() else ""))


def status() -> None:
    services = health()
    if services is None:
        say(f"nothing answers at {HEALTH_URL}")
        sys.exit(1)
    say(f"{HEALTH_URL}: " + ", ".join(f"{s} {services.get(s, 'missing')}" for s in SERVICES))
    sys.exit(0 if healthy() else 1)


def port_taken() -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", PORT)) == 0


def main() -> None:
    commands = {"start": start, "stop": stop, "status": status}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        die(f"usage: {sys.argv[0]} start|stop|status")
    commands[sys.argv[1]]()


if __name__ == "__main__":
    main()
