"""The README is part of the interface: every setting and every `run` flag is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from fanout.cli import build_parser
from fanout.config import Settings, env_name

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme_table(field: str) -> None:
    assert f"| `{env_name(field)}` |" in README


def test_every_run_flag_is_in_the_readme() -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    flags = [
        opt
        for action in run._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    ]
    assert len(flags) > 15
    assert [flag for flag in flags if f"`{flag}" not in README] == []
