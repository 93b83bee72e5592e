"""Errors and problem reports of the data layer: ``DataError`` is the io layer's one error type
(re-exported here), ``Problem`` is one finding of a scan of a dataset root.
"""

from __future__ import annotations

from dataclasses import dataclass

from unisegdiff.io.errors import DataError

__all__ = ["DataError", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One problem found by a scan of a dataset root (see ``check_root``)."""

    path: str
    message: str

    @classmethod
    def from_error(cls, error: DataError) -> "Problem":
        return cls(error.path, f"{error.problem}; {error.fix}" if error.fix else error.problem)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.message else self.path  # a bare-message DataError
