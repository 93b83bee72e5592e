"""The one error type for unusable user data: files, folders, checkpoints and arguments.

Its message names the offending file (or argument), says what is wrong and what to do about it.
"""

from __future__ import annotations


class DataError(ValueError):
    """User data that cannot be used as it is; ``str(error)`` is ``"<path>: <problem>; <fix>"``.

    ``DataError(message)`` alone is accepted too (the message then stands for itself), so that the type survives a
    DataLoader worker, which re-raises an exception from its message only.
    """

    def __init__(self, path: object, problem: str = "", fix: str = ""):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}" if problem else self.path
        super().__init__(f"{message}; {fix}" if fix else message)

    def __reduce__(self):
        return type(self), (self.path, self.problem, self.fix)
