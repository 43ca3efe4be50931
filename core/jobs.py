"""Durable jobs: every generation is a row that survives a restart, with the provider's task id
(its checkpoint) and where to deliver, so paid work is resumed, never resubmitted or lost."""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.ledger import Hold, Ledger
from core.parts import Destination, Intent, Request, Scope

log = logging.getLogger(__name__)


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DELIVERING = "delivering"
    """Media is being handed to the platform; a restart now delivers again (at least once)."""
    DELIVERED = "delivered"
    """The platform has the result; only the charge is left."""
    DONE = "done"
    FAILED = "failed"
    REFUNDED = "refunded"


UNFINISHED = (JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING, JobState.DELIVERED)
FINISHED = (JobState.DONE, JobState.FAILED, JobState.REFUNDED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    id: str
    scope: Scope
    user: str
    intent: Intent
    prompt: str
    state: JobState
    transaction_id: int
    destination: Destination | None
    checkpoint: dict[str, str] | None
    conversation: str | None = None

    def request(self) -> Request:
        """The request as the adapter first sent it (intent fixed, prompt already cleaned)."""
        return Request(
            scope=self.scope,
            user=self.user,
            text=self.prompt,
            intent=self.intent,
            id=self.id,
            destination=self.destination,
            conversation=self.conversation,
        )


class JobStore:
    """Job rows in the ledger's database (one connection, one schema history)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def create(
        self, request: Request, *, intent: Intent, prompt: str, hold: Hold, state: JobState = JobState.QUEUED
    ) -> None:
        now = _now()
        await self._ledger.write(
            "INSERT INTO jobs (id, created_at, updated_at, scope, user, intent, prompt, state, "
            "transaction_id, destination, conversation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request.id,
                now,
                now,
                str(request.scope),
                request.user,
                intent.value,
                prompt,
                state.value,
                hold.transaction_id,
                _destination_json(request.destination),
                request.conversation,
            ),
        )

    async def advance(self, job_id: str, state: JobState, *, error: str = "") -> None:
        await self._ledger.write(
            "UPDATE jobs SET state = ?, updated_at = ?, error = ? WHERE id = ?",
            (state.value, _now(), error[:500], job_id),
        )

    async def save_checkpoint(self, job_id: str, checkpoint: dict[str, str]) -> None:
        await self._ledger.write(
            "UPDATE jobs SET checkpoint = ?, updated_at = ? WHERE id = ?",
            (json.dumps(checkpoint, sort_keys=True), _now(), job_id),
        )

    async def purge(self, older_than: timedelta) -> int:
        """Delete finished jobs (with the prompts they keep) last touched longer ago than
        ``older_than``; returns how many. Unfinished ones stay, whatever their age: a restart
        still owes them a delivery or a refund."""
        cutoff = (datetime.now(UTC) - older_than).isoformat()
        marks = ", ".join("?" * len(FINISHED))
        cursor = await self._ledger.write(
            f"DELETE FROM jobs WHERE state IN ({marks}) AND updated_at < ?", (*FINISHED, cutoff)
        )
        if cursor.rowcount:
            log.info("purged %d finished jobs older than %s", cursor.rowcount, cutoff)
        return cursor.rowcount

    async def get(self, job_id: str) -> Job | None:
        jobs = await self._select("WHERE id = ?", (job_id,))
        return jobs[0] if jobs else None

    async def unfinished(self) -> list[Job]:
        """Jobs a previous process left before their end, oldest first."""
        marks = ", ".join("?" * len(UNFINISHED))
        return await self._select(f"WHERE state IN ({marks}) ORDER BY created_at", tuple(UNFINISHED))

    async def _select(self, where: str, params: tuple[object, ...]) -> list[Job]:
        db = self._ledger.connection
        async with db.execute(
            "SELECT id, scope, user, intent, prompt, state, transaction_id, destination, checkpoint, "
            "conversation "
            f"FROM jobs {where}",
            params,
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            Job(
                id=row[0],
                scope=Scope.parse(row[1]),
                user=row[2],
                intent=Intent(row[3]),
                prompt=row[4],
                state=JobState(row[5]),
                transaction_id=int(row[6]),
                destination=_destination(row[7]),
                checkpoint=json.loads(row[8]) if row[8] else None,
                conversation=row[9],
            )
            for row in rows
        ]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _destination_json(destination: Destination | None) -> str | None:
    if destination is None:
        return None
    return json.dumps(
        {
            "platform": destination.platform,
            "channel": destination.channel,
            "thread": destination.thread,
            "message": destination.message,
            "extra": dict(destination.extra),
        },
        sort_keys=True,
    )


def _destination(text: str | None) -> Destination | None:
    if not text:
        return None
    data = json.loads(text)
    return Destination(
        platform=data["platform"],
        channel=data["channel"],
        thread=data.get("thread"),
        message=data.get("message"),
        extra=data.get("extra") or {},
    )
