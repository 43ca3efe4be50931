"""``/access``: an admin's view and switches of the scope's access policy, the same on every surface."""

from __future__ import annotations

from core.commands.references import channel_id, member_id, mention, role_id
from core.parts import Intent, Scope
from core.policy import SWITCHABLE, MemberKind, Mode, Policies, Policy

ONLY_ADMINS = "Only admins can see or change who may use me here."
USAGE = (
    "Usage: `/access show`, `/access channel on|off [#channel]`, `/access mode open|allowlist`, "
    "`/access {kind} {example} allow|remove` or `/access service image|song|research|chat on|off`."
)


def format_policy(policy: Policy, *, roles: bool) -> str:
    """The whole policy in one reply, with the last few changes."""
    lines = ["**Access here**"]
    if policy.mode == "open":
        lines.append("Channels: open (every channel except those switched off)")
    else:
        lines.append("Channels: allowlist (only channels switched on)")
    on = [f"<#{channel}>" for channel, enabled in sorted(policy.channels.items()) if enabled]
    off = [f"<#{channel}>" for channel, enabled in sorted(policy.channels.items()) if not enabled]
    if on:
        lines.append(f"Switched on: {', '.join(on)}")
    if off:
        lines.append(f"Switched off: {', '.join(off)}")
    allowed = [f"<@&{role}>" for role in sorted(policy.roles)] + [
        mention(user) for user in sorted(policy.users)
    ]
    if allowed:
        who = "roles and members" if policy.roles and policy.users else "roles" if policy.roles else "members"
        lines.append(f"Allowed {who}: {', '.join(allowed)} (and admins); everyone else is refused")
    else:
        lines.append(f"Members: everyone may use me (no {'role' if roles else 'member'} allowlist)")
    switched = [intent.value for intent in SWITCHABLE if not policy.serves(intent)]
    lines.append(f"Services off: {', '.join(switched)}" if switched else "Services: all on")
    if policy.changes:
        lines.append("Last changes:")
        lines += [
            f"• {change.at:%Y-%m-%d %H:%M} UTC {mention(change.by)}: {change.what}"
            for change in policy.changes
        ]
    return "\n".join(lines)


async def access_command(
    policies: Policies,
    scope: Scope,
    text: str,
    *,
    user: str,
    admin: bool,
    channel: str | None,
    roles: bool,
) -> str:
    """Answer ``/access …`` for ``user`` in ``channel``. ``roles``: the surface's members have
    roles (Discord), so allowlists name roles; otherwise they name members."""
    if not admin:
        return ONLY_ADMINS
    words = text.split()
    action = words[0].lower() if words else "show"
    rest = words[1:]
    kind: MemberKind = "role" if roles else "user"
    usage = USAGE.format(kind=kind, example="@role" if roles else "@member")
    if action == "show" and not rest:
        return format_policy(await policies.policy(scope), roles=roles)
    if action == "channel":
        return await _channel(policies, scope, rest, by=user, here=channel, usage=usage)
    if action == "mode" and len(rest) == 1 and rest[0].lower() in ("open", "allowlist"):
        mode: Mode = "open" if rest[0].lower() == "open" else "allowlist"
        await policies.set_mode(scope, mode, by=user)
        if mode == "open":
            return "Mode: open. I answer in every channel except those switched off."
        return "Mode: allowlist. I answer only in channels switched on with `/access channel on`."
    if action == kind and len(rest) == 2 and rest[1].lower() in ("allow", "remove"):
        ident = role_id(rest[0]) if roles else member_id(rest[0])
        if ident is None:
            return f"{rest[0]!r} isn't a {kind}. {usage}"
        allowed = rest[1].lower() == "allow"
        await policies.set_member(scope, kind, ident, allowed, by=user)
        shown = f"<@&{ident}>" if roles else mention(ident)
        if allowed:
            return (
                f"{shown} may use me. Only allowed {kind}s (and admins) can use paid commands and mentions."
            )
        left = await policies.policy(scope)
        if left.restricts_members:
            return f"{shown} is no longer on the allowlist."
        return f"{shown} is no longer on the allowlist, which is now empty: everyone may use me again."
    if action == "service" and len(rest) == 2 and rest[1].lower() in ("on", "off"):
        service = next((intent for intent in SWITCHABLE if intent.value == rest[0].lower()), None)
        if service is None:
            return f"{rest[0]!r} isn't a service: use image, song, research or chat."
        on = rest[1].lower() == "on"
        await policies.set_service(scope, service, on, by=user)
        return f"{_service_name(service)} is now {'on' if on else 'off'} here."
    return usage


async def _channel(
    policies: Policies, scope: Scope, words: list[str], *, by: str, here: str | None, usage: str
) -> str:
    states = [word.lower() for word in words if word.lower() in ("on", "off")]
    named = [channel_id(word) for word in words if word.lower() not in ("on", "off")]
    if len(states) != 1 or len(named) > 1 or None in named:
        return usage
    target = named[0] if named else here
    if target is None:
        return "Name a channel: this command wasn't used in one."
    on = states[0] == "on"
    await policies.set_channel(scope, target, on, by=by)
    if on:
        return f"I'm switched on in <#{target}>."
    return (
        f"I'm switched off in <#{target}>: I ignore mentions there and answer slash commands privately "
        "that I'm off. `/access channel on` switches me back on."
    )


def _service_name(intent: Intent) -> str:
    return {"image": "Image generation", "song": "Song generation"}.get(
        intent.value, intent.value.capitalize()
    )
