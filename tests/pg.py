"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` and ``postgres`` in a fresh
temporary folder, listening only on a unix socket in it, stopped and deleted on close.

As root the server runs as the ``postgres`` user (``initdb`` and ``postgres`` refuse root);
otherwise as the current user. ``binaries()`` is None when PostgreSQL is not installed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SEARCHED = ("/usr/lib/postgresql/*/bin",)
MISSING = (
    "PostgreSQL is not installed (no initdb/postgres found): the PostgreSQL half of the storage "
    "tests is skipped. `make test` installs it as root (apt-get install postgresql)."
)
FAST_SETTINGS = {
    # A throwaway server: durability buys nothing, and the tests create a database each.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def binaries() -> Path | None:
    """The folder holding ``initdb`` and ``postgres`` (the newest installed), if any."""
    found = sorted(Path("/").glob(SEARCHED[0].lstrip("/")), key=lambda path: path.parent.name)
    for folder in reversed(found):
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path and shutil.which("postgres") else None


class Server:
    """One running server. ``url(name)`` is a database on it (see ``create``)."""

    def __init__(self, folder: Path, process: subprocess.Popen[bytes], *, user: str) -> None:
        self.folder = folder
        self.user = user
        self._process = process

    @property
    def pid(self) -> int:
        """The process the server was started as (``runuser`` as root, its parent)."""
        return self._process.pid

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.folder}"

    def create(self, prefix: str = "test") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        self.psql(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        folder = self._bin_folder()
        result = subprocess.run(
            [str(folder / "psql"), "-h", str(self.folder), "-U", self.user, "-d", database, "-Atc", sql],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def _bin_folder(self) -> Path:
        found = binaries()
        assert found is not None
        return found

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()  # SIGTERM: "smart" shutdown; fast enough with no clients
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _as_server_user(command: list[str]) -> tuple[list[str], str]:
    if os.geteuid() != 0:
        return command, pwd.getpwuid(os.geteuid()).pw_name
    return ["runuser", "-u", "postgres", "--", *command], "postgres"


def start(*, settings: dict[str, str] | None = None, max_connections: int = 200) -> Server:
    """Start a fresh server; raises ``RuntimeError`` when PostgreSQL is missing or fails to start."""
    folder_of_binaries = binaries()
    if folder_of_binaries is None:
        raise RuntimeError(MISSING)
    folder = Path(tempfile.mkdtemp(prefix="pgtest-"))
    data = folder / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, user="postgres", group="postgres")
        user = _user_name()
        initdb, _ = _as_server_user(
            [str(folder_of_binaries / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "--no-sync"]
        )
        subprocess.run([*initdb, "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
        options = {
            "listen_addresses": "",
            "unix_socket_directories": str(folder),
            "max_connections": str(max_connections),
            **FAST_SETTINGS,
            **(settings or {}),
        }
        flags = [item for key, value in options.items() for item in ("-c", f"{key}={value}")]
        command, _ = _as_server_user([str(folder_of_binaries / "postgres"), "-D", str(data), *flags])
        log = (folder / "server.log").open("wb")
        if os.geteuid() == 0:
            shutil.chown(folder / "server.log", user="postgres", group="postgres")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        server = Server(folder, process, user=user)
        _wait_until_ready(server, process)
        return server
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _user_name() -> str:
    return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def _wait_until_ready(server: Server, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited: {(server.folder / 'server.log').read_text()[-2000:]}")
        if (server.folder / ".s.PGSQL.5432").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                server.psql("SELECT 1")
                return
        time.sleep(0.05)
    server.stop()
    raise RuntimeError("postgres did not start within 30 s")


@contextlib.contextmanager
def running(**kwargs: object) -> Iterator[Server]:
    server = start(**kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
