"""Readiness of the parts that must be up before the bot can answer (database, platform links)."""

from __future__ import annotations


class Readiness:
    """Components report themselves; ``/readyz`` is green only when every registered one is ready."""

    def __init__(self) -> None:
        self._components: dict[str, bool] = {}

    def expect(self, name: str) -> None:
        """Register a component that starts out not ready."""
        self._components.setdefault(name, False)

    def mark(self, name: str, ready: bool) -> None:
        self._components[name] = ready

    def snapshot(self) -> dict[str, bool]:
        return dict(self._components)

    @property
    def ready(self) -> bool:
        return bool(self._components) and all(self._components.values())
