"""Errors and problem reports of the data layer.

Every message names the file, says what is wrong and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass


class DataError(ValueError):
    """A data file or dataset that cannot be used as it is (the message names the file and the fix)."""

    def __init__(self, path: object, problem: str, fix: str = ""):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}"
        super().__init__(f"{message}; {fix}" if fix else message)


@dataclass(frozen=True)
class Problem:
    """One problem found by a scan of a dataset root (see ``check_root``)."""

    path: str
    message: str

    @classmethod
    def from_error(cls, error: DataError) -> "Problem":
        return cls(error.path, f"{error.problem}; {error.fix}" if error.fix else error.problem)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"
