"""``python -m bot api-key …`` and ``python -m bot web`` as real processes."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import openai

from tests.cli import clean_env, run_bot


def test_a_key_is_printed_once_listed_with_its_spend_and_revoked(tmp_path: Path) -> None:
    created = run_bot(tmp_path, "api-key", "create", "--scope", "api:team", "--name", "alice")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sk-studio-") and len(key) > 40
    assert "only this once" in created.stderr
    assert key not in (tmp_path / "bot.db").read_bytes().decode("latin-1")  # only its hash is stored

    again = run_bot(tmp_path, "api-key", "create", "--scope", "api:team", "--name", "alice")
    assert again.returncode == 2 and "already exists" in again.stderr
    bad_scope = run_bot(tmp_path, "api-key", "create", "--scope", "dicsord:1", "--name", "bob")
    assert bad_scope.returncode == 2

    listed = run_bot(tmp_path, "api-key", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:2] == ["name", "scope"]
    assert row.split()[0:2] == ["alice", "api:team"] and "never" in row and row.endswith("active")

    revoked = run_bot(tmp_path, "api-key", "revoke", "alice")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert run_bot(tmp_path, "api-key", "list").stdout.splitlines()[1].endswith("revoked")
    assert run_bot(tmp_path, "api-key", "revoke", "alice").returncode == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_bot_web_serves_the_demo_providers_when_no_keys_are_set(tmp_path: Path) -> None:
    key = run_bot(tmp_path, "api-key", "create", "--scope", "api:team", "--name", "alice").stdout.strip()
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "web",
        "--port",
        str(port),
        cwd=tmp_path,
        env=clean_env(tmp_path, LOG_FORMAT="text"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        while b"web API listening" not in (line := await asyncio.wait_for(process.stderr.readline(), 30)):
            assert line, "the web server never started"
        api = openai.AsyncOpenAI(api_key=key, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
        models = [model.id async for model in api.models.list()]
        assert models == ["studio", "studio-chat", "studio-research"]
        stream = await api.chat.completions.create(
            model="studio", messages=[{"role": "user", "content": "hello there"}], stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        assert "hello there" in text
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
