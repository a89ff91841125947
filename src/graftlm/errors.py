"""Typed errors. Library code raises these; only `graftlm.cli` turns them into messages and exit codes.

Exit codes: 0 success, 1 a check found problems (e.g. invalid taxonomy files), 2 bad input or
configuration (the user can fix it), 3 an outside service or model failed, 130 interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where in a file a problem is: all parts optional, printed as `file:line:column: field`."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            pos = self.file
            if self.line is not None:
                pos += f":{self.line}"
                if self.column is not None:
                    pos += f":{self.column}"
            parts.append(pos)
        if self.field:
            parts.append(self.field)
        return ": ".join(parts)


class GraftError(Exception):
    """Base of every error graftlm raises on purpose. `hint` says how to fix it."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location and str(self.location) else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(GraftError):
    """A recipe or command-line option is wrong (unknown key, bad value, missing file)."""


class InputError(GraftError):
    """An input file (taxonomy, dataset, document) cannot be used as it is."""


class TaxonomyError(InputError):
    """A taxonomy cannot be read or a leaf is invalid."""


class DocumentError(InputError):
    """A knowledge document cannot be fetched or read (bad repo, commit, pattern, PDF)."""


class ModelError(GraftError):
    """A model cannot be found or loaded."""

    exit_code = 3


class TeacherError(GraftError):
    """A teacher (HTTP endpoint or local model) failed after all retries."""

    exit_code = 3


class StageError(GraftError):
    """A pipeline stage cannot run or produced nothing usable."""

    exit_code = 3
