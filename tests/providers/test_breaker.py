"""A provider 5xx storm opens the circuit breaker (fast answers, no calls) and it recovers."""

from __future__ import annotations

from collections import deque

import httpx

from core.breaker import CircuitBreaker
from core.engine import Engine
from core.ledger import Ledger
from core.parts import Image, Intent
from tests.clock import FakeClock
from tests.conftest import demo_engine
from tests.fakes.fake_bfl import FakeBfl
from tests.fakes.provider_server import Reply
from tests.providers.conftest import InstantClock, ask
from tests.providers.test_bfl import generator


async def test_a_5xx_storm_opens_the_breaker_and_the_service_recovers(
    ledger: Ledger, fake_bfl: FakeBfl, http: httpx.AsyncClient, clock: InstantClock
) -> None:
    breaker_clock = FakeClock()
    breakers = {intent: CircuitBreaker(threshold=3, cooldown_s=60, clock=breaker_clock) for intent in Intent}
    generators = dict(demo_engine(ledger).generators)
    generators[Intent.IMAGE] = generator(fake_bfl, http, clock)
    engine = Engine(ledger=ledger, generators=generators, breakers=breakers)
    fake_bfl.submits = deque([Reply(503, {"detail": "overloaded"})] * 3)

    for _ in range(3):
        outcome = await ask(engine, "a lighthouse", Intent.IMAGE)
        assert outcome.failure is not None
        assert "having trouble (HTTP 503)" in outcome.failure
    submits_during_storm = len(fake_bfl.seen)

    paused = await ask(engine, "a lighthouse", Intent.IMAGE)
    assert paused.failure is not None
    assert "paused image requests for 60 s" in paused.failure
    assert len(fake_bfl.seen) == submits_during_storm  # answered without calling the provider
    assert paused.rows == []  # and without reserving anything

    fake_bfl.submits = deque()  # the provider is healthy again
    await breaker_clock.advance(61)  # after the cooldown the trial request goes through
    recovered = await ask(engine, "a lighthouse", Intent.IMAGE)
    assert recovered.failure is None
    assert any(isinstance(part, Image) for part in recovered.parts)
    assert breakers[Intent.IMAGE].retry_after() is None
    report = await ledger.report(recovered.report.scope)
    assert report.used == 40_000  # only the successful image was charged
