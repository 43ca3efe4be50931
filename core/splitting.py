"""Where to cut text too long for one message: at a paragraph or line break, never inside a code fence."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)


def split_text(text: str, limit: int) -> tuple[str, str]:
    """Split ``text`` into a head of at most ``limit`` characters and the rest.

    Prefers a paragraph break, then a line break, then a space, in the later part of the window,
    and never cuts inside a code fence unless one fence alone exceeds the limit (then the fence is
    closed in the head and reopened in the tail).
    """
    if len(text) <= limit:
        return text, ""
    window = text[:limit]
    for separator in ("\n\n", "\n", " "):
        cut = _last_cut_outside_fence(text, window, separator, minimum=limit // 3)
        if cut is not None:
            return text[:cut].rstrip(), text[cut:].lstrip("\n ")
    fence = _open_fence(window)
    if fence is None:
        return window, text[limit:]
    closing = "\n```"
    inner = text[: limit - len(closing)]
    cut = inner.rfind("\n")
    if cut <= len(text) - len(text.lstrip()) or cut < limit // 3:
        cut = len(inner)
    return text[:cut].rstrip("\n") + closing, f"{fence}\n" + text[cut:].lstrip("\n")


def _last_cut_outside_fence(text: str, window: str, separator: str, *, minimum: int) -> int | None:
    position = window.rfind(separator)
    while position >= minimum:
        cut = position + len(separator)
        if _open_fence(text[:cut]) is None:
            return cut
        position = window.rfind(separator, 0, position)
    return None


def _open_fence(text: str) -> str | None:
    """The opening line (e.g. ```python) of a fence left open at the end of ``text``, if any."""
    fences = list(_FENCE.finditer(text))
    if len(fences) % 2 == 0:
        return None
    start = fences[-1].start()
    end = text.find("\n", start)
    return text[start : end if end != -1 else len(text)].strip()
