"""What the Dockerfile does, without a Docker engine: copy what the image copies, build the
wheel (`pip wheel --no-deps`), install it with no extras into a fresh virtualenv, then run the
installed `fanout` as the container would: `--version`, `rules check`, a short drain against
the moto server. Also: the runtime install has no moto, and `run --local` says which extra to
install."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.support.harness import Harness, dumps, simplified

# Minutes of pip installs: `make test-image` (and CI) runs it, `make test` leaves it out.
pytestmark = [pytest.mark.image, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
# The build context the Dockerfile copies (.dockerignore lets only these in).
IMAGE_SOURCES = ("pyproject.toml", "README.md", "rules.yaml", "fanout")
# Issue 12's target for `pip install fanout` (no extras).
RUNTIME_BUDGET_MB = 150
# pip's words when an index cannot be reached: then the recipe cannot run here.
NO_NETWORK = (
    "Failed to establish a new connection",
    "Could not find a version that satisfies the requirement setuptools",
    "No matching distribution found for setuptools",
    "Temporary failure in name resolution",
)


@dataclass(frozen=True)
class Installed:
    venv: Path
    sources: Path
    site_packages_mb: float
    packages: int

    @property
    def fanout(self) -> str:
        return str(self.venv / "bin" / "fanout")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if any(marker in output for marker in NO_NETWORK):
            pytest.skip(f"the wheel recipe needs a package index it cannot reach: {output[-500:]}")
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{output[-4000:]}")
    return done.stdout


def tree_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("image")
    sources = root / "src"
    sources.mkdir()
    for name in IMAGE_SOURCES:  # COPY pyproject.toml README.md fanout rules.yaml
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, sources / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, sources / name)
    wheels = root / "wheels"
    # RUN pip wheel --no-deps --wheel-dir /wheels .
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(sources))
    (wheel,) = wheels.glob("fanout-*.whl")
    venv = root / "venv"
    # RUN python -m venv /opt/fanout && /opt/fanout/bin/pip install /wheels/fanout-*.whl
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "pip"), "install", "--quiet", str(wheel))
    listed = run(str(venv / "bin" / "pip"), "list", "--format=json")
    (site,) = venv.glob("lib/python*/site-packages")
    return Installed(venv, sources, tree_mb(site), len(orjson.loads(listed)))


def test_runtime_install_is_lean(installed: Installed) -> None:
    print(
        f"\nruntime install: {installed.site_packages_mb:.0f} MB site-packages, "
        f"{installed.packages} packages (pip list)"
    )
    assert installed.site_packages_mb <= RUNTIME_BUDGET_MB
    probe = "import importlib.util as u; print(u.find_spec('moto'), u.find_spec('flask'))"
    assert run(installed.python, "-c", probe).split() == ["None", "None"]


def test_test_support_is_not_shipped(installed: Installed) -> None:
    # fanout/testing (fault proxy, dummy credentials, assert-based checks) is for tests and the
    # bench from the source tree: neither in the wheel nor in the installed package.
    (wheel,) = (installed.venv.parent / "wheels").glob("fanout-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("fanout/pipeline/") for n in names)
    assert not [n for n in names if n.startswith("fanout/testing")]
    # -I: isolated, so the repository in the working directory is not on sys.path.
    probe = (
        "import importlib.util as u; "
        "print(u.find_spec('fanout').origin, u.find_spec('fanout.testing'))"
    )
    origin, testing = run(installed.python, "-I", "-c", probe).split()
    assert origin.startswith(str(installed.venv)), origin
    assert testing == "None"


def test_version_and_rules_check(installed: Installed) -> None:
    assert run(installed.fanout, "--version").strip() == "fanout 0.1.0"
    out = run(installed.fanout, "rules", "check", str(installed.sources / "rules.yaml"))
    assert "OK" in out.splitlines()[0]


def test_local_run_names_the_extra(installed: Installed) -> None:
    done = subprocess.run(
        [installed.fanout, "run", "--local"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "fanout: error: the embedded local run needs moto's SQS server, which the runtime "
        "install leaves out: pip install 'fanout[local]'"
    ]


async def test_short_drain_against_moto(
    installed: Installed, harness: Harness, tmp_path: Path
) -> None:
    h = harness
    source, dlq, target = await h.queue("source"), await h.queue("dlq"), await h.queue("target")
    rules = h.rules(
        f"targets:\n  t: {{queue_url: '{target}'}}\n"
        "rules:\n  - id: voice\n    condition: detail.channel == 'voice'\n    targets: [t]\n"
    )
    await h.send(source, [dumps(simplified()) for _ in range(12)] + ["{not json"])
    summary = tmp_path / "summary.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
    env.update(
        FANOUT_SOURCE_QUEUE_URL=source,
        FANOUT_DLQ_URL=dlq,
        FANOUT_ENDPOINT_URL=h.endpoint,
        FANOUT_RULES=str(rules),
        FANOUT_POLLERS="1",
        FANOUT_MAX_POLLERS="1",
        FANOUT_WAIT_TIME_SECONDS="1",
    )
    proc = await asyncio.create_subprocess_exec(
        installed.fanout, "run", "--exit-when-idle", "2", "--summary-json", str(summary),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, err.decode()[-3000:]
    counts = orjson.loads(summary.read_bytes())
    assert counts["received"] == counts["deleted"] == 13
    assert counts["per_target"] == {"t": 12} and counts["dlq"] == {"invalid_json": 1}
