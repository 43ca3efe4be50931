"""Checks of the operator's set-up made before start-up, so a mistake ends in one line, not a traceback."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from bot.errors import CONFIGURATION, RUNTIME, Problem, UsageError
from core.db import is_postgresql

EXAMPLE_URLS = (
    "sqlite:///data/bot.db (relative to the working folder) or sqlite:////app/data/bot.db (absolute)"
)


class PreflightError(Exception):
    """A set-up problem found before start-up; carries what to print and the exit status."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def database_path(database_url: str) -> Path | None:
    """The file a ``sqlite://`` URL names (``None`` for an in-memory database or a PostgreSQL
    server, which has no file here); ``UsageError`` naming DATABASE_URL for anything else."""
    url = database_url.strip()
    scheme, separator, rest = url.partition("://")
    if not separator:
        # sqlite:/// plus the path: three slashes before a relative path, four before an absolute one.
        raise UsageError(
            f"DATABASE_URL: {database_url!r} is not a URL; for that file write sqlite:///{url}"
            f" (e.g. {EXAMPLE_URLS})."
        )
    if is_postgresql(url):
        return None  # reached (and its errors explained) when the bot connects
    if scheme != "sqlite":
        raise UsageError(
            f"DATABASE_URL: {scheme}:// databases are not supported; use {EXAMPLE_URLS}, "
            "or postgresql://user:password@host:5432/db"
        )
    if rest in ("", ":memory:", "/:memory:"):
        return None
    path = rest[1:] if rest.startswith("/") else rest
    if not path or path.endswith("/"):
        raise UsageError(f"DATABASE_URL: {database_url!r} names a folder, not a file; use {EXAMPLE_URLS}.")
    return Path(path)


def check_database(database_url: str) -> None:
    """Make sure the database can be created or opened for writing and is a SQLite file.

    Opens it with the standard library for a moment (creating it, as the bot would) and takes the
    write lock once. Raises ``UsageError`` or ``PreflightError`` with the variable and what to do.
    """
    path = database_path(database_url)
    if path is None:
        return
    shown = f"{database_url} ({path.absolute()})" if not path.is_absolute() else database_url
    if path.is_dir():
        raise UsageError(f"DATABASE_URL: {shown} is a folder; name a file in it, e.g. {path / 'bot.db'}.")
    blocking = next((parent for parent in path.absolute().parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UsageError(f"DATABASE_URL: {shown} can't be created: {blocking} is a file, not a folder.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PreflightError(_unwritable(shown, error.strerror or str(error))) from None
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5, isolation_level=None)) as db:
            db.execute("PRAGMA schema_version").fetchone()
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
    except sqlite3.OperationalError as error:
        if "locked" in str(error):
            return  # a running bot holds the write lock: the file is fine
        raise PreflightError(_unwritable(shown, str(error))) from None
    except sqlite3.DatabaseError as error:
        raise PreflightError(
            Problem(
                f"DATABASE_URL: {shown} is not a SQLite database, or it is damaged ({error}).\n"
                "  Restore it from a backup, or point DATABASE_URL at a new file.",
                RUNTIME,
            )
        ) from None


def _unwritable(shown: str, reason: str) -> Problem:
    return Problem(
        f"DATABASE_URL: can't write the database {shown}: {reason}.\n"
        f"  Make its folder writable for this user (uid {os.getuid()}), or point DATABASE_URL at one"
        " that is (in Docker: the /app/data volume).",
        CONFIGURATION,
    )


def check_media_folder(folder: Path) -> None:
    """``--out`` must be a folder, or a path where one can be made (it is made on first use)."""
    existing = next((path for path in (folder, *folder.absolute().parents) if path.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        what = "is a file" if existing == folder else f"is inside {existing}, which is a file"
        raise UsageError(f"--out: {folder} {what}; give a folder for images and songs, e.g. --out media.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out: {existing} isn't writable for this user; give another folder.")
