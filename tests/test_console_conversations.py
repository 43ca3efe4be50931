"""The console remembers its conversation across runs (``python -m bot chat`` twice), summarizes
it with ``/summary`` and forgets it with ``/forget``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from tests.cli import run_bot


def test_the_console_keeps_its_context_across_restarts(tmp_path: Path) -> None:
    first = run_bot(tmp_path, "chat", "--out", "media", stdin="/imagine a red fox\nhello there\n")
    assert first.returncode == 0, first.stderr
    assert "Image saved: media/a-red-fox.png" in first.stdout

    second = run_bot(
        tmp_path,
        "chat",
        "--out",
        "media",
        stdin="another one\nnow a song about that\n/summary\n/budget\n",
    )
    assert second.returncode == 0, second.stderr
    out = second.stdout
    assert "Image saved: media/a-red-fox-2.png" in out  # "another one" repeated the fox from the first run
    assert "“Demo song: a song about a red fox” saved" in out
    assert "**Summary of this conversation**" in out
    assert "• user console: hello there" in out
    assert "• bot: [delivered song: a song about a red fox]" in out
    assert "summary $0.00 charged · demo" in out  # demo work is never charged


def test_forget_wipes_the_memory_for_the_next_run(tmp_path: Path) -> None:
    first = run_bot(tmp_path, "chat", stdin="/imagine a red fox\n/forget\n/forget all\n/summary\n")
    assert first.returncode == 0, first.stderr
    assert "Forgot this conversation (2 messages deleted)" in first.stdout
    assert "Forgot every conversation here (0 messages deleted)" in first.stdout
    assert "nothing to summarize here yet" in first.stdout

    second = run_bot(tmp_path, "chat", stdin="another one\n")
    assert second.returncode == 0, second.stderr
    assert "You said: “another one”" in second.stdout  # nothing to repeat: just a chat answer
    assert "Image saved" not in second.stdout


def test_history_older_than_the_retention_is_purged_at_start_up(tmp_path: Path) -> None:
    first = run_bot(tmp_path, "chat", stdin="/imagine a red fox\n")
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(tmp_path / "bot.db") as db:
        db.execute("UPDATE conversation_events SET created_at = '2000-01-01T00:00:00+00:00'")
        # Demo work is free: the row is given an amount, which the purge must keep.
        db.execute("UPDATE transactions SET created_at = '2000-01-01T00:00:00+00:00', charged = 40000")
        db.execute(
            "INSERT INTO conversation_events (conversation, scope, user, kind, text, created_at) "
            "VALUES ('console:local', 'console:local', 'bot', 'answer', 'recent', ?)",
            (datetime.now(UTC).isoformat(),),
        )
    db.close()

    second = run_bot(tmp_path, "chat", stdin="")
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(tmp_path / "bot.db") as db:
        remaining = db.execute("SELECT text FROM conversation_events").fetchall()
        transactions = db.execute("SELECT service, prompt, charged FROM transactions").fetchall()
    db.close()
    assert remaining == [("recent",)]
    assert transactions == [("image", "", 40_000)]  # the money stays, the prompt goes
