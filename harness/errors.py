"""Typed errors.  Library code raises these; only cli.py turns them into exit codes."""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base error: a one-line message plus, where there is one, the log to read."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log = log

    def line(self) -> str:
        """The one line printed to the user."""
        if self.log is not None:
            return f"{self.message} (log: {self.log})"
        return self.message


class UsageError(HarnessError):
    """Command-line arguments that cannot work together."""


class TreeError(HarnessError):
    """The kernel tree is missing, not a kernel tree, or has no matching kernel."""


class ToolchainError(HarnessError):
    """A program or library the build needs is not installed."""


class SelectionError(HarnessError):
    """The requested tests match nothing in the tree."""


class BuildError(HarnessError):
    """A build step failed."""


class BootError(HarnessError):
    """The VM did not boot, panicked, or was lost before reporting a status."""


class HarnessTimeout(HarnessError):
    """A step ran past its time limit."""


class ParseError(HarnessError):
    """A saved log could not be read."""


class InternalError(HarnessError):
    """A bug in harness itself; the traceback is in the log."""


class SeriesError(HarnessError):
    """The series input cannot be read: empty, not mail, a corrupt diff, unreachable."""


class ApplyError(HarnessError):
    """A patch of the series does not apply to the tree."""
