"""Guarded fetches of the URLs providers hand back: which hosts are trusted, which get credentials,
how many redirects and bytes are accepted, and what a download really is (its magic bytes).

A provider's answer is untrusted input: a hostile or compromised provider could point the bot at
``http://127.0.0.1/…`` or a cloud metadata address and have the body posted to a channel. So a URL
is fetched only when it is on the configured provider's own origin (scheme, host and port of its
base URL), on a host the operator allows (``MEDIA_ALLOWED_HOSTS``), or is ``https`` on a host whose
every address is public. Redirects are followed here, one hop at a time, each hop checked again.
Credentials are sent only to the provider's own origin.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx

from core.errors import GenerationError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MAX_MEDIA_BYTES = 25 * MIB
"""``MAX_MEDIA_MB``'s default: Discord's upload limit for most servers."""
MAX_ANSWER_BYTES = MIB
"""A status answer (JSON) larger than this is not a status answer."""
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"https": 443, "http": 80}

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port)`` → the IP addresses a connection to it could reach."""

MediaKind = Literal["image", "audio"]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, looked up without blocking the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public(address: str) -> bool:
    """Whether ``address`` is a globally routable unicast address (not loopback, private,
    link-local such as the cloud metadata service, shared, reserved or multicast)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # scoped IPv6 (``fe80::1%eth0``) and anything else unparseable
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return is_public(str(embedded))
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host and port: what a URL must share with a base URL to count as the same server."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: httpx.URL | str) -> Origin:
        url = httpx.URL(url)
        return cls(url.scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(url.scheme, 0))


class Guard(Protocol):
    """What ``fetch`` asks before each hop: may this URL be fetched, and with which headers."""

    @property
    def service(self) -> str: ...

    async def check(self, url: httpx.URL) -> None: ...

    def credentials(self, url: httpx.URL, headers: Mapping[str, str] | None) -> Mapping[str, str] | None: ...


class RefusedUrl(GenerationError):
    """A provider handed back a URL the bot will not fetch. Logged with the host only."""


class TooLarge(GenerationError):
    """A download exceeded ``MAX_MEDIA_MB`` (or an answer its much smaller cap)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaPolicy:
    """The operator's rules for every provider's downloads (``MEDIA_ALLOWED_HOSTS``, ``MAX_MEDIA_MB``)."""

    allowed_hosts: frozenset[str] = frozenset()
    """Hosts trusted whatever they resolve to, over http or https; they never get credentials."""
    max_bytes: int = DEFAULT_MAX_MEDIA_BYTES
    resolver: Resolver = field(default=resolve)
    """Injectable so tests stay offline."""

    @classmethod
    def of(
        cls, *, allowed_hosts: Iterable[str] = (), max_mb: int = 25, resolver: Resolver = resolve
    ) -> MediaPolicy:
        hosts = frozenset(host.strip().lower() for host in allowed_hosts if host.strip())
        return cls(allowed_hosts=hosts, max_bytes=max_mb * MIB, resolver=resolver)

    def guard(self, base_url: str, *, service: str, regional: bool = False) -> UrlGuard:
        """The guard for a provider configured at ``base_url``; see ``UrlGuard.regional``."""
        return UrlGuard(own=Origin.of(base_url), service=service, policy=self, regional=regional)


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlGuard:
    """Decides, for one provider, whether a URL may be fetched and whether it gets credentials."""

    own: Origin
    service: str
    """How people are told about it, e.g. "image service"."""
    policy: MediaPolicy
    regional: bool = False
    """Also treat ``https`` hosts in the base host's parent domain as the provider's own (BFL's
    global ``api.bfl.ai`` answers with polling URLs on ``api.us1.bfl.ai``); they must still resolve
    to public addresses only."""

    def is_own(self, url: httpx.URL) -> bool:
        """Whether ``url`` is the provider's own server, the only place its credentials go."""
        origin = Origin.of(url)
        if origin == self.own:
            return True
        return self.regional and origin.scheme == "https" == self.own.scheme and self._sibling(origin.host)

    async def check(self, url: httpx.URL) -> None:
        """Return if ``url`` may be fetched; raise ``RefusedUrl`` (logged with the host only) if not."""
        origin = Origin.of(url)
        if origin == self.own:
            return
        if origin.host in self.policy.allowed_hosts and origin.scheme in _DEFAULT_PORTS:
            return
        if origin.scheme != "https":
            raise self._refused(origin.host, f"{origin.scheme or 'no'} scheme, not https")
        try:
            ipaddress.ip_address(origin.host)
        except ValueError:
            try:
                addresses = list(await self.policy.resolver(origin.host, origin.port))
            except OSError as error:
                raise self._refused(origin.host, f"does not resolve ({type(error).__name__})") from None
        else:
            addresses = [origin.host]
        private = [address for address in addresses if not is_public(address)]
        if not addresses or private:
            raise self._refused(origin.host, f"resolves to non-public {private or 'nothing'}")

    def credentials(self, url: httpx.URL, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
        """``headers`` (which may hold a key) when ``url`` is the provider's own, else none."""
        return headers if self.is_own(url) else None

    def _sibling(self, host: str) -> bool:
        parent = self.own.host.partition(".")[2]
        if "." not in parent or _is_ip(self.own.host):
            return False
        return host.endswith("." + parent)

    def _refused(self, host: str, reason: str) -> RefusedUrl:
        return RefusedUrl(
            f"The {self.service} pointed me at an address I don't fetch from (only its own server and "
            "public https hosts are allowed), so I stopped.",
            detail=f"refused URL on host {host!r}: {reason}",
        )


async def fetch(
    http: httpx.AsyncClient,
    url: str,
    *,
    guard: Guard | None,
    max_bytes: int,
    what: str,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Response:
    """One GET of ``url`` with its body read (at most ``max_bytes``), redirects followed here.

    With a ``guard``, every hop is checked first and ``headers`` go only to the provider's own
    origin. Without one the URL is the operator's own configuration and redirects are not followed.
    Raises ``RefusedUrl``, ``TooLarge``, or the transport error of a request that got no answer.
    """
    target = httpx.URL(url)
    if params:
        target = target.copy_merge_params(params)
    service = guard.service if guard is not None else "service"
    for _ in range(MAX_REDIRECTS + 1):
        sent = headers
        if guard is not None:
            await guard.check(target)
            sent = guard.credentials(target, headers)
        request = http.build_request("GET", target, headers=sent)
        response = await http.send(request, stream=True, follow_redirects=False)
        try:
            location = response.headers.get("location")
            if guard is None or not response.is_redirect or location is None:
                body = await read_capped(response, max_bytes=max_bytes, service=service, what=what)
                return _buffered(response, body)
        finally:
            await response.aclose()
        target = target.join(location)
    raise GenerationError(
        f"The {service}'s link went through too many redirects, so I stopped.",
        detail=f"more than {MAX_REDIRECTS} redirects, last to host {target.host!r}",
    )


async def read_capped(response: httpx.Response, *, max_bytes: int, service: str, what: str) -> bytes:
    """The (decoded) body, refused as soon as it is known to exceed ``max_bytes``: from
    ``Content-Length`` before reading, else while streaming."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(service, what, max_bytes, f"Content-Length {declared}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(service, what, max_bytes, f"more than {max_bytes} bytes streamed")
        chunks.append(chunk)
    return b"".join(chunks)


def _buffered(response: httpx.Response, body: bytes) -> httpx.Response:
    """The streamed ``response`` with its (capped, decoded) ``body`` in memory."""
    # Decoded already: a kept Content-Encoding would have it decoded twice.
    headers = [item for item in response.headers.multi_items() if item[0] != "content-encoding"]
    return httpx.Response(response.status_code, headers=headers, content=body, request=response.request)


def _too_large(service: str, what: str, max_bytes: int, detail: str) -> TooLarge:
    limit = f"{max_bytes / MIB:g} MB" if max_bytes >= MIB else f"{max_bytes} bytes"
    return TooLarge(
        f"The {service}'s {what} was larger than the {limit} limit, so I didn't download it.", detail=detail
    )


def sniff(data: bytes, kind: MediaKind) -> str | None:
    """The MIME type the magic bytes show, if ``data`` is media of ``kind``; else ``None``.

    Images: PNG, JPEG, WebP. Audio: MP3 (ID3 tag or an MPEG audio frame), WAV, Ogg, M4A.
    """
    if kind == "image":
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return "image/png"
        if data.startswith(b"\xff\xd8\xff"):
            return "image/jpeg"
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return "image/webp"
        return None
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and _mpeg_audio_frame(data[1])):
        return "audio/mpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data.startswith(b"OggS"):
        return "audio/ogg"
    if data[4:8] == b"ftyp":
        return "audio/mp4"
    return None


def _mpeg_audio_frame(second: int) -> bool:
    """A frame sync's second byte: eleven set bits in all, and a layer that exists (not ADTS's 00)."""
    return second & 0xE0 == 0xE0 and second & 0x06 != 0


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


DEFAULT_MEDIA = MediaPolicy()
"""No extra hosts, 25 MB, the system resolver: what a provider built without settings uses."""
