"""Demo research papers, chat answers and summaries, written locally and streamed a few words at a time."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

from core.clock import Clock, SystemClock
from core.history import DEFAULT_HISTORY_TOKENS, Window, fit_history, transcript
from core.parts import GeneratorPart, Intent, Request, Status, TextDelta

DEMO_NOTE = "_Demo output, written offline: set `OPENAI_API_KEY` for real answers._"


def research_paper(topic: str) -> str:
    """A structured paper skeleton about ``topic``: title, abstract, sections, references."""
    subject = topic.strip().rstrip(".?!") or "the topic"
    title = subject[:1].upper() + subject[1:]
    sections = [
        (
            "Introduction",
            f"This paper surveys {subject}: where it came from, how it works, and why it "
            "matters. It is organised from first principles to open questions.",
        ),
        (
            "Background",
            f"Any account of {subject} starts with the problems people were trying to solve, "
            "the tools they had, and the constraints that shaped their choices.",
        ),
        (
            "Key developments",
            "\n".join(
                f"{n}. **Stage {n}.** A step that changed what was possible, and the evidence that it did."
                for n in range(1, 4)
            ),
        ),
        (
            "Discussion",
            f"The record on {subject} is uneven: some claims are well documented, others rest "
            "on a handful of sources. A careful reader weighs both.",
        ),
        (
            "Conclusion",
            f"{title} shows how ideas become practice. Further work should test the "
            "open questions above against primary sources.",
        ),
    ]
    body = "\n\n".join(f"## {name}\n\n{text}" for name, text in sections)
    references = "\n".join(
        f"{n}. Demo Author {n}. *A source on {subject}*. Demo Press, {2000 + n}." for n in range(1, 4)
    )
    return (
        f"# {title}: a short research paper\n\n{DEMO_NOTE}\n\n**Abstract.** An overview of "
        f"{subject}, in five sections.\n\n{body}\n\n## References\n\n{references}\n"
    )


def chat_answer(text: str, window: Window | None = None) -> str:
    """Echo the message, and show what the bot remembers of the conversation."""
    memory = ""
    earlier = [turn for turn in window.turns if turn.role == "user"] if window else []
    if window is not None and earlier:
        memory = (
            f"\n\nI remember {len(window.turns)} earlier turns of this conversation; before this you said: "
            f"“{_clip(earlier[-1].text, 120)}”."
        )
    return (
        f"You said: “{text.strip()}”.{memory}\n\nI'm running on offline demo providers, so I can't "
        "really think about it, but everything else works: try `/imagine a red fox`, `/song a sea shanty`, "
        f"`/research the transistor` or `/budget`.\n\n{DEMO_NOTE}"
    )


def summary_of(window: Window, focus: str = "") -> str:
    """A bullet per remembered turn (the newest ten), clipped: what a summary would cover."""
    shown = transcript(window.turns[-10:], per_turn_chars=100).splitlines()
    left_out = len(window.turns) - len(shown) + window.left_out
    bullets = "\n".join(f"• {line}" for line in shown)
    older = f"\n• …and {left_out} older turns." if left_out else ""
    about = f" (focus: {focus.strip()})" if focus.strip() else ""
    return f"**Summary of this conversation{about}**\n\n{bullets}{older}\n\n{DEMO_NOTE}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chunks(text: str) -> Iterator[str]:
    """Word-sized pieces, whitespace attached, the way an LLM streams tokens."""
    yield from re.findall(r"\S+\s*|\s+", text)


class _DemoText:
    """Placeholder text, free: the bot builds it without a cost. ``cost`` lets a test stand it in
    for a paid provider."""

    intent: Intent
    demo = True

    def __init__(
        self,
        *,
        cost: int = 0,
        delay_s: float = 0.03,
        clock: Clock | None = None,
        history_tokens: int = DEFAULT_HISTORY_TOKENS,
    ) -> None:
        self._cost = cost
        self._delay_s = delay_s
        self._clock = clock or SystemClock()
        self._history_tokens = history_tokens

    def estimate(self, prompt: str) -> int:
        return self._cost

    def write(self, prompt: str, window: Window) -> str:
        raise NotImplementedError

    async def generate(self, prompt: str, request: Request) -> AsyncIterator[GeneratorPart]:
        window = fit_history(request.history, max_tokens=self._history_tokens)
        status = window.status()
        if status:
            yield Status(status)
        for piece in chunks(self.write(prompt, window)):
            yield TextDelta(piece)
            if self._delay_s:
                await self._clock.sleep(self._delay_s)


class DemoResearchGenerator(_DemoText):
    intent = Intent.RESEARCH

    def write(self, prompt: str, window: Window) -> str:
        return research_paper(prompt)


class DemoChatGenerator(_DemoText):
    intent = Intent.CHAT

    def write(self, prompt: str, window: Window) -> str:
        return chat_answer(prompt, window)


class DemoSummaryGenerator(_DemoText):
    """``/summary`` offline: the remembered turns, one clipped bullet each."""

    intent = Intent.SUMMARY

    def write(self, prompt: str, window: Window) -> str:
        return summary_of(window, prompt)
