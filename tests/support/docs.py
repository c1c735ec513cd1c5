"""The docs site's reference hook, for the tests that check the docs against the code.

docs/hooks/reference.py is an mkdocs hook, not a package module: it is loaded from its file,
as mkdocs loads it."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "docs" / "hooks" / "reference.py"


@cache
def reference_hook() -> ModuleType:
    """docs/hooks/reference.py as a module (registered, so its dataclasses resolve)."""
    name = "fanout_docs_reference_hook"
    spec = importlib.util.spec_from_file_location(name, HOOK)
    assert spec is not None and spec.loader is not None, HOOK
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
