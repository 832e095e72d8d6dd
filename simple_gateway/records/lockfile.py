"""Files owned by one live process, told apart from those of dead ones by an flock.

The spool and the journal both keep per-process files in a shared folder: the owner
holds an exclusive lock for as long as it lives, so a file whose lock can be taken
belongs to a process that is gone and may be replayed. The inode check guards against
a file renamed or deleted between opening and locking it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


def lock_unheld(path: Path) -> int | None:
    """A read-only descriptor holding the lock of `path`, or None when it is held or gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    if _lock(path, fd):
        return fd
    os.close(fd)
    return None


def create_locked(directory: Path, prefix: str, suffix: str, flags: int) -> tuple[Path, int]:
    """A new file `<prefix><pid>-<ms><suffix>`, locked before anyone else can claim it."""
    ms = int(time.time() * 1000)
    while True:
        path = directory / f"{prefix}{os.getpid()}-{ms}{suffix}"
        ms += 1
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        if _lock(path, fd):
            return path, fd
        os.close(fd)  # a replayer took the empty file between create and lock


def same_file(path: Path, fd: int) -> bool:
    """True while `path` still names the file `fd` has open."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _lock(path: Path, fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return same_file(path, fd)
