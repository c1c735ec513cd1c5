"""Errors that stop the start: the CLI prints their message as one line and exits 2."""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """A configuration problem the user must fix before fanout can start."""

    exit_code = 2


class RulesError(ConfigError):
    """A rules file that cannot be loaded; the message names the file, the rule and the fix."""

    def __init__(
        self, path: Path | str, problem: str, *, where: str | None = None, fix: str = ""
    ) -> None:
        self.path = str(path)
        self.where = where  # "rule 'high'", "target 'critical'", "line 3" or None
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {where}: {problem}" if where else f"{self.path}: {problem}"
        if fix:
            message += f" (fix: {fix})"
        super().__init__(message)


class StartupError(ConfigError):
    """A queue that is missing, unreachable or denied at start."""
