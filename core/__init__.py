"""Platform-neutral core: routing, generators, the budget ledger and the streaming renderer.

Import from the modules themselves (``core.engine``, ``core.money``, …): this package imports
nothing, so ``import core.money`` loads only what money needs."""
