"""Where Slack answers go: the thread a request is answered in (kept for after a restart), the note
a slash command's answer is threaded under, and what to say when Slack won't take a post."""

from __future__ import annotations

from adapters.slack.text import escape_mrkdwn
from core.parts import Destination

PLATFORM = "slack"
MAX_ANCHOR_PROMPT = 300
NOT_A_MEMBER = frozenset({"not_in_channel", "channel_not_found"})


def thread_destination(
    *, channel: str, thread: str, message: str, team: str, user: str, user_team: str
) -> Destination:
    """Everything needed to answer in this thread again after a restart."""
    extra = {"team": team, "user": user}
    if user_team != team:
        extra["user_team"] = user_team
    return Destination(platform=PLATFORM, channel=channel, thread=thread, message=message, extra=extra)


def anchor_text(user: str, command: str, prompt: str) -> str:
    """The message a slash command's answer is threaded under: who asked for what."""
    shown = " ".join(prompt.split())
    if not shown:
        return f"<@{user}> used `/{command}`"
    if len(shown) > MAX_ANCHOR_PROMPT:
        shown = shown[: MAX_ANCHOR_PROMPT - 1] + "…"
    return f"<@{user}> used `/{command}`: “{escape_mrkdwn(shown)}”"


def cannot_post(code: str, bot_user_id: str | None) -> str:
    if code in NOT_A_MEMBER:
        me = f"<@{bot_user_id}>" if bot_user_id else "the bot"
        return (
            f"I can't post in this conversation: I'm not a member. Invite me with /invite {me} "
            "(or add me from the channel's settings, under Integrations) and try again. "
            "Direct messages between people can't host my replies; use a channel. Nothing was charged."
        )
    return f"I couldn't post here (Slack said `{code}`). Nothing was charged."
