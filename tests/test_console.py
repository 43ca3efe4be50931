"""The console adapter end to end: ``python -m bot chat`` fed a piped script, as a newcomer would."""

from __future__ import annotations

import signal
import subprocess
import sys
import wave
from pathlib import Path

from PIL import Image as PILImage

from tests.cli import clean_env, run_bot

SCRIPT = """\
/imagine a red fox
/song a sea shanty
/research the transistor
hello there
/budget
"""


def test_demo_chat_produces_an_image_a_song_and_streamed_research(tmp_path: Path) -> None:
    result = run_bot(tmp_path, "chat", "--out", "media", stdin=SCRIPT)
    assert result.returncode == 0, result.stderr

    out = result.stdout
    assert "Image saved: media/a-red-fox.png" in out
    with PILImage.open(tmp_path / "media" / "a-red-fox.png") as picture:
        assert picture.format == "PNG"
        assert picture.size == (768, 512)

    assert "“Demo song: a sea shanty” saved: media/a-sea-shanty.wav" in out
    with wave.open(str(tmp_path / "media" / "a-sea-shanty.wav")) as audio:
        assert audio.getnframes() / audio.getframerate() > 5
    assert "[Chorus]" in out

    assert "# The transistor: a short research paper" in out
    assert "## References" in out
    assert "Demo output" in out
    assert "You said: “hello there”" in out

    assert "Spent: $0.102" in out  # 0.04 image + 0.05 song + 0.01 research + 0.002 chat
    assert "Remaining: $19.898" in out
    assert "image $0.04" in out


def test_bad_input_is_explained_and_costs_nothing(tmp_path: Path) -> None:
    script = "/imagine\n/frobnicate now\n/research " + "x" * 4001 + "\n/budget set lots\n/budget\n"
    result = run_bot(tmp_path, "chat", stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Usage: `/imagine PROMPT`" in out
    assert "Unknown command /frobnicate." in out
    assert "`/song PROMPT`" in out  # the command list follows
    assert "the limit is 4,000" in out
    assert "'lots' is not an amount in dollars" in out
    assert "Spent: $0.00" in out
    assert not (tmp_path / "out").exists()


def test_exhausted_budget_refuses_with_what_remains_and_when_it_resets(tmp_path: Path) -> None:
    script = "/budget set 0.05\n/imagine a cat\n/imagine a dog\n/budget\n"
    result = run_bot(tmp_path, "chat", stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Monthly limit set to $0.05." in out
    assert "Image saved: out/a-cat.png" in out
    assert "can't cover an image ($0.04): $0.01 of $0.05 is left this month" in out
    assert "It resets on" in out
    assert not (tmp_path / "out" / "a-dog.png").exists()
    assert "Spent: $0.04" in out


def test_operator_budget_commands(tmp_path: Path) -> None:
    assert run_bot(tmp_path, "budget", "set", "discord:123", "12.5").stdout.strip() == (
        "discord:123: monthly limit set to $12.50."
    )
    shown = run_bot(tmp_path, "budget", "show", "discord:123")
    assert "Limit: $12.50" in shown.stdout
    assert "Remaining: $12.50" in shown.stdout
    reset = run_bot(tmp_path, "budget", "reset", "discord:123")
    assert "limit reset to the default, $20.00" in reset.stdout
    bad = run_bot(tmp_path, "budget", "show", "nonsense")
    assert bad.returncode == 2
    assert "platform:id" in bad.stderr


def test_invalid_settings_stop_start_up_naming_the_variable(tmp_path: Path) -> None:
    result = run_bot(tmp_path, "chat", DEFAULT_BUDGET_USD="twenty")
    assert result.returncode == 2
    assert "DEFAULT_BUDGET_USD" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_platform_credentials_names_what_is_missing(tmp_path: Path) -> None:
    result = run_bot(tmp_path, "run")
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr
    assert "SLACK_BOT_TOKEN" in result.stderr


def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=clean_env(tmp_path, DEMO_DELAY_S="0.5"),
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("/research a long topic\n")
    process.stdin.flush()
    assert process.stdout.readline().startswith("> /research")
    process.stdout.readline()  # the first streamed text is on screen: work is in flight
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    # The interrupted research was refunded on the way out, not left for the start-up sweep.
    shown = run_bot(tmp_path, "budget", "show")
    assert "Spent: $0.00" in shown.stdout
    assert "research $0.01 refunded" in shown.stdout
