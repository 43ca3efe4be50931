"""Who is an admin of a Slack workspace, as the core's commands need to know."""

from __future__ import annotations

import logging
from collections.abc import Collection

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.surface import error_code

log = logging.getLogger(__name__)


class SlackAdmins:
    """Workspace admins and owners (asked of ``users.info``), and the configured admin ids."""

    def __init__(self, client: AsyncWebClient, *, admin_ids: Collection[str]) -> None:
        self._client = client
        self._admin_ids = frozenset(admin_ids)

    async def include(self, user: str) -> bool:
        if user in self._admin_ids:
            return True
        try:
            response = await self._client.users_info(user=user)
        except SlackApiError as error:
            log.warning(
                "users.info failed for %s (%s); treating them as not an admin", user, error_code(error)
            )
            return False
        profile = response.get("user") or {}
        return bool(profile.get("is_admin") or profile.get("is_owner"))
