"""The console adapter end to end: ``python -m bot chat`` fed a piped script, as a newcomer would."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import wave
from collections import deque
from pathlib import Path

from PIL import Image as PILImage

from tests.cli import clean_env, run_bot
from tests.fakes.fake_bfl import KEY as BFL_KEY
from tests.fakes.fake_bfl import FakeBfl

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

    assert "Spent: $0.00" in out  # demo work is never charged
    assert "Remaining: $20.00" in out
    assert "image $0.00 charged · demo" in out


def test_bad_input_is_explained_and_costs_nothing(tmp_path: Path) -> None:
    script = "/imagine\n/frobnicate now\n/research " + "x" * 4001 + "\n/budget set lots\n/budget\n"
    result = run_bot(tmp_path, "chat", stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Usage: `/imagine PROMPT [--ar 16:9] [--seed 42]`" in out
    assert "Unknown command /frobnicate." in out
    assert "`/song PROMPT`" in out  # the command list follows
    assert "the limit is 4,000" in out
    assert "'lots' is not an amount in dollars" in out
    assert "Spent: $0.00" in out
    assert not (tmp_path / "out").exists()


async def test_exhausted_budget_refuses_with_what_remains_and_when_it_resets(tmp_path: Path) -> None:
    script = "/budget set 0.05\n/imagine a cat\n/imagine a dog\n/budget\n"
    bfl = FakeBfl()  # a paid provider: the demo is free and would never exhaust a budget
    bfl.polls = deque(["Ready"])
    await bfl.start()
    try:
        env = clean_env(tmp_path, BFL_API_KEY=BFL_KEY, BFL_API_URL=bfl.base_url)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "chat", cwd=tmp_path, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(script.encode()), timeout=60)
    finally:
        await bfl.close()
    assert process.returncode == 0, stderr.decode()
    out = stdout.decode()
    assert "Monthly limit set to $0.05." in out
    assert "Image saved: out/a-cat.jpg" in out
    assert "can't cover an image ($0.04): $0.01 of $0.05 is left this month" in out
    assert "It resets on" in out
    assert not (tmp_path / "out" / "a-dog.jpg").exists()
    assert "Spent: $0.04" in out


def test_demo_work_is_free_even_on_an_exhausted_budget(tmp_path: Path) -> None:
    result = run_bot(tmp_path, "chat", stdin="/budget set 0\n/imagine a cat\n/budget\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Image saved: out/a-cat.png" in out
    assert "Spent: $0.00" in out
    assert "image $0.00 charged · demo" in out


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
    assert "research $0.00 refunded · demo" in shown.stdout


def test_the_console_user_is_its_scopes_admin_for_budgets_and_access(tmp_path: Path) -> None:
    script = (
        "/access service image off\n"
        "/imagine a red fox\n"
        "draw a lighthouse\n"
        "/access user <@friend> allow\n"
        "/access show\n"
        "/budget user-default 2\n"
        "/budget user <@friend> off\n"
        "/budget users\n"
        "/budget\n"
    )
    result = run_bot(tmp_path, "chat", "--out", "media", stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Image generation is now off here." in out
    assert out.count("Image generation is switched off here by an admin. Nothing was charged.") == 2
    assert not (tmp_path / "media").exists() or not list((tmp_path / "media").iterdir())
    assert "Allowed members: <@friend> (and admins)" in out and "Services off: image" in out
    assert "<@console>: service image off" in out
    assert "Every member without a cap of their own may now spend $2.00 a month." in out
    assert "<@friend> now has no per-member cap" in out
    assert "of your $2.00 cap (the default here)" in out
