"""Render docs/diagrams/*.mmd to SVG (development time, like fanout/genesys/generate.py).

    python docs/diagrams/render.py --mermaid PATH/TO/mermaid.min.js [--chromium chromium]

The site shows the SVGs, so the diagrams render offline and need no script from a CDN; the
README embeds architecture.mmd as a mermaid block, which GitHub renders itself. Mermaid runs in
headless Chromium (``npm pack mermaid@11`` gives ``package/dist/mermaid.min.js``; Debian's
``chromium``). Each SVG records the SHA-256 of its source, and tests/unit/test_docs.py fails
when a source changed without a new render.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = """<!doctype html><meta charset="utf-8"><body><pre id="out"></pre>
<script src="{mermaid}"></script>
<script>
mermaid.initialize({{startOnLoad: false, theme: "default", flowchart: {{htmlLabels: false}}}});
mermaid.render("diagram", {source}).then(
  (r) => {{ document.getElementById("out").textContent = r.svg; }},
  (e) => {{ document.getElementById("out").textContent = "ERROR " + e; }});
</script>"""


def source_digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def render(source: str, mermaid: Path, chromium: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "render.html"
        page.write_text(PAGE.format(mermaid=mermaid.as_uri(), source=json.dumps(source)))
        dom = subprocess.run(  # noqa: S603 - the developer's chromium, arguments built here
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--allow-file-access-from-files",
                "--virtual-time-budget=15000",
                "--dump-dom",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    svg = html.unescape(found.group(1)) if found else ""
    if not svg.startswith("<svg"):
        raise SystemExit(f"mermaid did not render: {svg[:300] or dom[:300]}")
    return svg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mermaid", type=Path, required=True, help="mermaid.min.js (v11)")
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args()
    for mmd in sorted(HERE.glob("*.mmd")):
        source = mmd.read_text()
        svg = render(source, args.mermaid.resolve(), args.chromium)
        stamp = f"<!-- rendered from {mmd.name} sha256:{source_digest(source)} -->\n"
        mmd.with_suffix(".svg").write_text(stamp + svg + "\n")
        print(f"wrote {mmd.with_suffix('.svg').relative_to(HERE.parents[1])}")


if __name__ == "__main__":
    main()
