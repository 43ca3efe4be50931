"""Readiness of the parts that must be up before the bot can answer (database, platform links)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

Details = Callable[[], Mapping[str, object]]
"""A component's current particulars for ``/readyz`` (JSON values), read on every request."""


class Readiness:
    """Components report themselves; ``/readyz`` is green only when every registered one is ready.

    A component may also ``describe`` itself (e.g. the Discord adapter its shards and their
    latency), so that ``/readyz`` shows more than a yes or no without the core knowing what."""

    def __init__(self) -> None:
        self._components: dict[str, bool] = {}
        self._details: dict[str, Details] = {}

    def expect(self, name: str) -> None:
        """Register a component that starts out not ready."""
        self._components.setdefault(name, False)

    def mark(self, name: str, ready: bool) -> None:
        self._components[name] = ready

    def describe(self, name: str, details: Details) -> None:
        """Have ``details()`` answer for ``name`` in ``details_snapshot`` from now on."""
        self._details[name] = details

    def snapshot(self) -> dict[str, bool]:
        return dict(self._components)

    def details_snapshot(self) -> dict[str, Mapping[str, object]]:
        return {name: details() for name, details in self._details.items()}

    @property
    def ready(self) -> bool:
        return bool(self._components) and all(self._components.values())
