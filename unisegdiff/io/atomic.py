"""Atomic writes: a uniquely named temporary file in the target folder, moved into place when complete.

A reader never sees a half-written file; a failed write leaves the old file (if any) and no temporary behind.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable

TEMP_PREFIX = ".tmp-"


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], Any], overwrite: bool = True) -> Path:
    """Call ``writer(temp_path)`` to write the content, then move it to ``path``; return ``path``.

    The temporary file ``.tmp-<random>-<name>`` ends with the target's name, so writers that choose the format by
    extension (SimpleITK, PIL, matplotlib) see the right one; it is created with mode 0666 less the umask, like any
    new file. Without ``overwrite`` an existing ``path`` is refused (``FileExistsError``), even one that appears
    while writing (the move is a hard link, which never clobbers).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise _exists(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _create_temp(path)
    try:
        writer(temp)
        _commit(temp, path, overwrite)
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)
    return path


def write_bytes_atomic(data: bytes, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write raw bytes atomically (refuses an existing ``path`` unless ``overwrite``)."""
    return write_atomic(path, lambda temp: temp.write_bytes(data), overwrite)


def write_text_atomic(text: str, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write UTF-8 text atomically (replaces an existing ``path`` unless ``overwrite=False``)."""
    return write_atomic(path, lambda temp: temp.write_text(text, encoding="utf-8"), overwrite)


def write_json_atomic(data: Any, path: str | os.PathLike, indent: int = 2, overwrite: bool = True) -> Path:
    """Write ``data`` as JSON atomically; values JSON cannot hold are written as ``str(value)``."""
    return write_text_atomic(json.dumps(data, indent=indent, default=str) + "\n", path, overwrite)


def _create_temp(path: Path) -> Path:
    for _ in range(100):
        temp = path.parent / f"{TEMP_PREFIX}{secrets.token_hex(4)}-{path.name}"
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies, as for any new file
            return temp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: cannot create a unique temporary file; remove stale {TEMP_PREFIX}* files")


def _commit(temp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished temp file into place; without ``overwrite`` a hard link never clobbers a file that
    appeared meanwhile (filesystems without hard links fall back to an existence check and a rename)."""
    if not overwrite:
        try:
            os.link(temp, path)
            return
        except FileExistsError:
            raise _exists(path) from None
        except OSError:
            if path.exists():
                raise _exists(path) from None
    os.replace(temp, path)


def _exists(path: Path) -> FileExistsError:
    return FileExistsError(f"{path}: already exists; remove it, choose another path or pass overwrite=True")
