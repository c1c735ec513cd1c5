"""mkdocs hook: the bench's plots (``bench/results/**/*.png``) served under ``performance/plots/``.

The PNGs stay where the bench writes them, so a rerun of the bench updates the site without a
copy to keep in step; a page links them as ``plots/<path under bench/results>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
PREFIX = "performance/plots"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    from mkdocs.structure.files import File

    for png in sorted(RESULTS.rglob("*.png")):
        uri = f"{PREFIX}/{png.relative_to(RESULTS).as_posix()}"
        files.append(File.generated(config, uri, abs_src_path=str(png)))
    return files
