"""Run ``python -m bot`` as a subprocess with a clean, test-owned environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.settings import environment_variables

REPO = Path(__file__).resolve().parent.parent


def clean_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The current environment minus every bot setting, plus a database in ``tmp_path``."""
    env = {key: value for key, value in os.environ.items() if key.upper() not in environment_variables()}
    env["PYTHONPATH"] = str(REPO)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/bot.db"
    env["DEMO_DELAY_S"] = "0.001"
    env["METRICS_PORT"] = "0"
    env.update(overrides)
    return env


def run_bot(
    tmp_path: Path, *args: str, stdin: str = "", timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGS`` in ``tmp_path`` (so no developer ``.env`` is read)."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(tmp_path, **env),
        timeout=timeout,
        check=False,
    )
