"""cxloop's files are its own user's alone: directories 0700, files 0600.

The database, its WAL, the queue and the keys hold every secret and every answer. New files are
created private; files and directories an earlier version left readable to others are made
private when a process starts (an upgrade needs no step of its own).
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600
# What SQLite keeps beside a database file (and our write lock beside it).
_SIDECARS = ("-wal", "-shm", "-journal", "-writer.lock")


def restrict(path: Path) -> None:
    """Take group and other permissions away from `path`, if it exists and is ours to change."""
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            os.chmod(path, mode & ~0o077)
    except (FileNotFoundError, PermissionError):
        pass  # gone meanwhile, or another user's: nothing this process may do


def private_directory(path: Path) -> Path:
    """`path` as a directory only its owner can enter (created with its parents if missing)."""
    path.mkdir(mode=PRIVATE_DIRECTORY, parents=True, exist_ok=True)
    restrict(path)
    return path


def private_file(path: Path) -> Path:
    """`path` (created empty if missing) and its SQLite sidecars, readable by the owner only.

    SQLite creates the WAL and shared-memory files with the database file's mode, so a database
    created private stays private."""
    private_directory(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        restrict(path)
    for suffix in _SIDECARS:
        restrict(Path(f"{path}{suffix}"))
    return path


def secure_data_dir(data_dir: Path) -> None:
    """Make the data directory and everything in it private (0700 directories, 0600 files)."""
    private_directory(data_dir)
    for root, directories, files in os.walk(data_dir):
        for name in (*directories, *files):
            restrict(Path(root) / name)
