"""Files only the runner's user may read: the data folder, the key file, the SQLite store.

The store holds sealed secrets and the key file the key that opens them; the
umask of whoever starts the runner (often 022) must not decide who else on the
machine can copy them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Make ``path`` (and missing parents) if needed; a folder made here is owner-only."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=PRIVATE_DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only, or take group and other access off it.

    SQLite gives the -wal and -shm files it creates the database file's mode,
    so creating the database this way keeps those private too; existing ones
    written by an older runner are tightened here as well.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
        return
    except FileExistsError:
        pass
    for existing in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(OSError):  # missing, or another user's file: leave it be
            mode = stat.S_IMODE(existing.stat().st_mode)
            if mode & 0o077:
                existing.chmod(mode & ~0o077)
