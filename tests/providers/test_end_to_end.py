"""``python -m bot chat`` as a real process, its providers pointed at the fakes running in this test."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.settings import environment_variables
from core.ledger import Ledger
from core.money import format_usd, usd_to_micros
from core.parts import Scope
from core.providers.pricing import parse_token_prices
from tests.fakes.fake_bfl import JPEG, FakeBfl
from tests.fakes.fake_bfl import KEY as BFL_KEY
from tests.fakes.fake_openai import FakeOpenAI, Stream, route
from tests.fakes.fake_songs import COVER, MP3, FakeUdio
from tests.fakes.fake_songs import KEY as SONG_KEY

PAPER = (
    "# Lighthouses at sea\n\n**Abstract.** How lights guide ships.\n\n"
    "## Introduction\n\nFresnel lenses changed everything.\n\n"
    "## References\n\n1. Stevenson, A. *A Rudimentary Treatise on Lighthouses*. 1850.\n"
)
ANSWER = "A lighthouse is a tower with a bright light that guides ships."
PRICES = parse_token_prices("gpt-4o-mini=0.15/0.60")["gpt-4o-mini"]


async def test_the_console_makes_real_images_songs_and_research_and_the_ledger_agrees(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_bfl: FakeBfl, fake_udio: FakeUdio
) -> None:
    fake_openai.chat.extend(
        [
            Stream(PAPER, usage=(400, 300)),  # /research
            route("chat", "what is a lighthouse?", usage=(120, 20)),  # the mention's classifier call
            Stream(ANSWER, usage=(60, 25)),  # ... answered as chat
        ]
    )
    env = {key: value for key, value in os.environ.items() if key.upper() not in environment_variables()}
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "OPENAI_API_KEY": "sk-e2e",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_MAX_RETRIES": "0",
        "BFL_API_KEY": BFL_KEY,
        "BFL_API_URL": fake_bfl.base_url,
        "SONG_API_KEY": SONG_KEY,
        "SONG_API_URL": fake_udio.base_url,
        "SONG_POLL_S": "0.05",
        "LOG_LEVEL": "INFO",
    }
    lines = (
        "/imagine a lighthouse\n/song a sea shanty about cats\n/research lighthouses\n"
        "what is a lighthouse?\n/budget\n"
    )

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "chat",
        "--out",
        str(tmp_path / "out"),
        cwd=tmp_path,  # no developer .env
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(lines.encode()), timeout=45)
    out, err = stdout.decode(), stderr.decode()

    assert process.returncode == 0, err
    for service in ("image", "song", "research", "chat", "router"):
        assert f"{service} live" in err
    for secret in ("sk-e2e", BFL_KEY, SONG_KEY):
        assert secret not in out + err
    assert (tmp_path / "out" / "a-lighthouse.jpg").read_bytes() == JPEG
    assert (tmp_path / "out" / "cats-at-sea.mp3").read_bytes() == MP3
    assert (tmp_path / "out" / "cats-at-sea-cover.jpg").read_bytes() == COVER
    assert PAPER.strip() in out and ANSWER in out
    assert "Heave away, my bonny cats" in out  # the lyrics

    expected = {
        "image": usd_to_micros("0.04"),
        "song": usd_to_micros("0.05"),
        "research": PRICES.cost(400, 300),
        "router": PRICES.cost(120, 20),
        "chat": PRICES.cost(60, 25),
    }
    ledger = await Ledger.open(f"sqlite:///{tmp_path}/bot.db", default_limit=0)
    try:
        report = await ledger.report(Scope("console", "local"))
    finally:
        await ledger.close()
    assert report.by_service == dict(sorted(expected.items()))
    assert (report.used, report.held) == (sum(expected.values()), 0)
    assert all(row.status == "charged" and not row.demo for row in report.recent)
    # By hand: $0.04 + $0.05 + research 400×0.15+300×0.60 + router 120×0.15+20×0.60 + chat 60×0.15+25×0.60
    # micro-dollars = 90000 + 240 + 30 + 24.
    assert format_usd(report.used) == "$0.090294"
    assert "Spent: $0.090294" in out
