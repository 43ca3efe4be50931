"""Jobs taken over from dead processes while this one runs, handed to the platform adapter
that can deliver them: each running adapter says which destinations it reaches (its platform;
on Discord, the guilds of its shards) and how it delivers a resumed job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from core.jobs import Resumption
from core.parts import Destination

log = logging.getLogger(__name__)

Reaches = Callable[[Destination], bool]
"""Whether an adapter can deliver to a destination."""
Deliver = Callable[[Resumption], None]
"""Starts delivering a resumed job (in the adapter's own background work) and returns at once."""


@dataclass(frozen=True, slots=True)
class _Outlet:
    reaches: Reaches
    deliver: Deliver


class Handoff:
    """The running adapters that take resumed jobs, by name. Empty (nothing is taken over) until
    an adapter opens, so a process never claims work it has nobody to deliver with."""

    def __init__(self) -> None:
        self._outlets: dict[str, _Outlet] = {}

    def open(self, name: str, *, reaches: Reaches, deliver: Deliver) -> None:
        self._outlets[name] = _Outlet(reaches, deliver)

    def close(self, name: str) -> None:
        self._outlets.pop(name, None)

    def reaches(self, destination: Destination | None) -> bool:
        """Whether a running adapter here can deliver to ``destination``."""
        return destination is not None and any(o.reaches(destination) for o in self._outlets.values())

    def deliver(self, resumption: Resumption) -> bool:
        """Hand ``resumption`` to the first adapter that reaches its destination; False if none does
        (it closed meanwhile)."""
        destination = resumption.request.destination
        for outlet in self._outlets.values():
            if destination is not None and outlet.reaches(destination):
                outlet.deliver(resumption)
                return True
        return False
