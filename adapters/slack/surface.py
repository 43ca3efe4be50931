"""One Slack thread as a render ``Surface``: native streaming where Slack allows it, edits otherwise.

Text goes into the thread as a native stream (``chat.startStream`` / ``appendStream`` /
``stopStream``, the appends being the growth of the rendered text) or, when streaming is
unavailable or a stream expires, as a message kept current with ``chat.update``. Streams only
ever append, so the transient progress line lives in a small message of its own below the
answer, edited while work goes on and deleted when it is over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.buttons import Leftovers, actions_block
from adapters.slack.text import escape_mrkdwn, neutralise_broadcasts
from core.pacing import Pace
from core.parts import Audio, Image, Media
from core.render import STREAMING_MARKER, MessageState, View
from core.splitting import split_text
from core.studio import parse_action_id

log = logging.getLogger(__name__)

MAX_CHARS = 3500
"""Below the ~4000 characters at which Slack rejects a message (``msg_too_long``), with room for
the in-progress marker and a failure notice."""
PACE = Pace(burst=3, per_second=0.9)
"""About one write a second per message, short bursts allowed (``chat.update`` is Tier 3, ~50 a
minute; Slack publishes no figure for streams). The post takes a token and one is kept for the
final text. A little under 1 a second: calls spaced exactly a second apart here can arrive less
than a second apart, and a limit counted over a window then answers 429."""
MAX_ALT_TEXT = 1000
STREAMING_UNSUPPORTED = frozenset(
    {
        "unknown_method",
        "method_deprecated",
        "missing_scope",
        "not_allowed_token_type",
        "feature_not_enabled",
        "not_supported",
    }
)
"""``chat.startStream`` errors meaning this app or workspace cannot stream at all."""


def error_code(error: SlackApiError) -> str:
    """The ``error`` field of a failed Web API call (``not_in_channel``, ``ratelimited``, …), or
    ``http_<status>`` when Slack answered without one (a 5xx)."""
    response: Any = error.response
    data = getattr(response, "data", response)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None)
    return f"http_{status}" if status and status != 200 else "unknown_error"


class StreamingSupport:
    """Whether native streaming still looks usable; one instance is shared by every surface so a
    workspace that cannot stream is asked only once."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled

    def disable(self, reason: str) -> None:
        if self.enabled:
            log.warning("Slack native streaming is unavailable (%s); using chat.update instead", reason)
        self.enabled = False


@dataclass(slots=True)
class _Message:
    ts: str
    shown: str
    """For a stream: the text appended so far. Otherwise: the message's whole text."""
    streaming: bool


class SlackSurface:
    """The replies to one request, in one thread of one channel."""

    max_chars = MAX_CHARS
    pace = PACE

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str,
        user: str,
        team: str,
        streaming: StreamingSupport,
    ) -> None:
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._user = user
        self._team = team
        self._streaming = streaming
        self._message: _Message | None = None
        self._status: str | None = None
        self._status_ts: str | None = None

    async def post(self, view: View) -> None:
        self._message = None
        await self._show(_inert(view))

    async def edit(self, view: View) -> None:
        await self._show(_inert(view))

    async def upload(self, media: Media, *, replaces_progress: bool) -> None:
        await self._set_status(None)
        self._message = None
        if isinstance(media, Image):
            uploaded = await self._client.files_upload_v2(
                channel=self._channel,
                thread_ts=self._thread_ts,
                file=media.data,
                filename=media.filename,
                title=media.title or media.prompt[:200] or media.filename,
                alt_txt=media.prompt[:MAX_ALT_TEXT] or None,
            )
            await self._offer(media.actions, Leftovers(files=_file_ids(uploaded)), "Image")
        elif isinstance(media, Audio):
            await self._upload_song(media)

    async def say(self, text: str) -> None:
        """Post a plain notice in the thread (used when rendering itself went wrong)."""
        await self._set_status(None)
        message, self._message = self._message, None
        if message is not None and message.streaming:
            try:
                await self._client.chat_stopStream(channel=self._channel, ts=message.ts)
            except SlackApiError as error:
                log.info("could not stop stream %s (%s)", message.ts, error_code(error))
        await self._client.chat_postMessage(
            channel=self._channel, thread_ts=self._thread_ts, markdown_text=text[:MAX_CHARS]
        )

    # --- text ---------------------------------------------------------------------------------

    async def _show(self, view: View) -> None:
        if view.text:
            await self._write(view)
        await self._set_status(view.status if view.state is MessageState.STREAMING else None)

    async def _write(self, view: View) -> None:
        message = self._message
        if message is None:
            self._message = await self._start(view)
        elif message.streaming:
            await self._continue_stream(message, view)
        elif _decorated(view) != message.shown:
            await self._update(message, view)

    async def _start(self, view: View) -> _Message:
        if view.state is MessageState.STREAMING and self._streaming.enabled:
            try:
                response = await self._client.chat_startStream(
                    channel=self._channel,
                    thread_ts=self._thread_ts,
                    markdown_text=view.text,
                    recipient_user_id=self._user,
                    recipient_team_id=self._team,
                )
            except SlackApiError as error:
                code = error_code(error)
                if code in STREAMING_UNSUPPORTED:
                    self._streaming.disable(code)
                else:
                    log.info("chat.startStream failed (%s); posting a message instead", code)
            else:
                return _Message(str(response["ts"]), view.text, streaming=True)
        text = _decorated(view)
        response = await self._client.chat_postMessage(
            channel=self._channel, thread_ts=self._thread_ts, markdown_text=text
        )
        return _Message(str(response["ts"]), text, streaming=False)

    async def _continue_stream(self, message: _Message, view: View) -> None:
        final = view.state is not MessageState.STREAMING
        if view.text.startswith(message.shown):
            delta = view.text[len(message.shown) :]
            try:
                if final:
                    await self._client.chat_stopStream(
                        channel=self._channel, ts=message.ts, markdown_text=delta or None
                    )
                    message.streaming = False
                elif delta:
                    await self._client.chat_appendStream(
                        channel=self._channel, ts=message.ts, markdown_text=delta
                    )
                message.shown = view.text
                return
            except SlackApiError as error:
                # Streams expire (message_not_in_streaming_state); the message itself stays editable.
                log.info("stream %s ended early (%s); editing it instead", message.ts, error_code(error))
        else:
            # The renderer rewrote text already streamed (a split that closes a code fence).
            try:
                await self._client.chat_stopStream(channel=self._channel, ts=message.ts)
            except SlackApiError as error:
                log.info("could not stop stream %s (%s)", message.ts, error_code(error))
        message.streaming = False
        await self._update(message, view)

    async def _update(self, message: _Message, view: View) -> None:
        text = _decorated(view)
        await self._client.chat_update(channel=self._channel, ts=message.ts, markdown_text=text)
        message.shown = text

    # --- progress line ------------------------------------------------------------------------

    async def _set_status(self, status: str | None) -> None:
        """Show, change or remove the progress message. It is cosmetic: failures are only logged."""
        if status == self._status:
            return
        self._status = status
        try:
            if status is None:
                ts, self._status_ts = self._status_ts, None
                if ts is not None:
                    await self._client.chat_delete(channel=self._channel, ts=ts)
            elif self._status_ts is None:
                response = await self._client.chat_postMessage(
                    channel=self._channel, thread_ts=self._thread_ts, markdown_text=_status_line(status)
                )
                self._status_ts = str(response["ts"])
            else:
                await self._client.chat_update(
                    channel=self._channel, ts=self._status_ts, markdown_text=_status_line(status)
                )
        except SlackApiError as error:
            log.info("progress line not updated (%s)", error_code(error))

    # --- media --------------------------------------------------------------------------------

    async def _upload_song(self, song: Audio) -> None:
        uploads: list[dict[str, Any]] = [
            {
                "file": song.data,
                "filename": song.filename,
                "title": song.title,
                "alt_txt": f"Song: {song.title}. {song.prompt}"[:MAX_ALT_TEXT],
            }
        ]
        if song.cover is not None:
            uploads.append(
                {
                    "file": song.cover.data,
                    "filename": song.cover.filename,
                    "title": f"Cover art: {song.title}"[:200],
                    "alt_txt": (song.cover.prompt or f"Cover art for {song.title}")[:MAX_ALT_TEXT],
                }
            )
        uploaded = await self._client.files_upload_v2(
            file_uploads=uploads,
            channel=self._channel,
            thread_ts=self._thread_ts,
            initial_comment=_song_caption(song),
        )
        lyrics = neutralise_broadcasts(song.lyrics.strip())
        rest = f"**Lyrics**\n\n{lyrics}" if lyrics else ""
        posted: list[str] = []
        while rest:
            head, rest = split_text(rest, MAX_CHARS)
            response = await self._client.chat_postMessage(
                channel=self._channel, thread_ts=self._thread_ts, markdown_text=head
            )
            posted.append(str(response["ts"]))
        await self._offer(song.actions, Leftovers(files=_file_ids(uploaded), messages=tuple(posted)), "Song")

    async def _offer(self, actions: tuple[str, ...], leftovers: Leftovers, kind: str) -> None:
        """The buttons under media just delivered, as a message of their own (see ``buttons``)."""
        if not actions:
            return
        await self._client.chat_postMessage(
            channel=self._channel,
            thread_ts=self._thread_ts,
            text=f"{kind} actions: " + ", ".join(_words(actions)),
            blocks=[actions_block(actions, leftovers)],
        )


def _file_ids(response: Any) -> tuple[str, ...]:
    files = response.get("files") or []
    return tuple(str(entry["id"]) for entry in files if isinstance(entry, dict) and entry.get("id"))


def _words(actions: tuple[str, ...]) -> list[str]:
    return [parsed[0].value for text in actions if (parsed := parse_action_id(text))]


def _inert(view: View) -> View:
    """The view with everything the model wrote unable to notify a channel or a user group."""
    status = neutralise_broadcasts(view.status) if view.status else view.status
    return replace(view, text=neutralise_broadcasts(view.text), status=status)


def _decorated(view: View) -> str:
    return view.text + STREAMING_MARKER if view.state is MessageState.STREAMING else view.text


def _status_line(status: str) -> str:
    return f"_⏳ {status}_"


def _song_caption(song: Audio) -> str:
    caption = f"🎵 *{escape_mrkdwn(song.title)}*"
    if song.duration_s:
        minutes, seconds = divmod(round(song.duration_s), 60)
        caption += f" ({minutes}:{seconds:02d})"
    return caption
