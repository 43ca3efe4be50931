"""Durable jobs: every generation is a row that survives a restart, with the provider's task id
(its checkpoint) and where to deliver, so paid work is resumed, never resubmitted or lost."""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from core.db import Database
from core.generator import Resumable
from core.ledger import Hold, Ledger
from core.outcomes import WHAT, failure, settle
from core.parts import Destination, GeneratorPart, Intent, Media, Part, Request, Scope
from core.results import restored, stored
from core.router import Route
from core.streams import single

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
    UNDELIVERED = "undelivered"
    """Paid for and charged, but its delivery failed (the channel was deleted, the consumer
    stopped): the row keeps the result (or the checkpoint to fetch it) for a later delivery."""


UNFINISHED = (JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING, JobState.DELIVERED)
FINISHED = (JobState.DONE, JobState.FAILED, JobState.REFUNDED, JobState.UNDELIVERED)


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
    """Job rows in the bot's database."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def _now(self) -> str:
        return self._database.clock.utc().isoformat()

    async def create(
        self, request: Request, *, intent: Intent, prompt: str, hold: Hold, state: JobState = JobState.QUEUED
    ) -> None:
        now = self._now()
        await self._database.write(
            'INSERT INTO jobs (id, created_at, updated_at, scope, "user", intent, prompt, state, '
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
        await self._database.write(
            "UPDATE jobs SET state = ?, updated_at = ?, error = ? WHERE id = ?",
            (state.value, self._now(), error[:500], job_id),
        )

    async def save_checkpoint(self, job_id: str, checkpoint: dict[str, str]) -> None:
        await self._database.write(
            "UPDATE jobs SET checkpoint = ?, updated_at = ? WHERE id = ?",
            (json.dumps(checkpoint, sort_keys=True), self._now(), job_id),
        )

    async def keep_undelivered(self, job_id: str, media: Media | None, *, error: str) -> None:
        """Mark a paid job whose delivery failed, keeping ``media`` (if it was made) with it."""
        data, meta = stored(media) if media is not None else (None, None)
        await self._database.write(
            "UPDATE jobs SET state = ?, updated_at = ?, error = ?, result = ?, result_meta = ? WHERE id = ?",
            (JobState.UNDELIVERED.value, self._now(), error[:500], data, meta, job_id),
        )

    async def result(self, job_id: str) -> Media | None:
        """The media an undelivered job keeps, if any."""
        row = await self._database.fetchone(
            "SELECT result, result_meta FROM jobs WHERE id = ? AND result IS NOT NULL", (job_id,)
        )
        return restored(bytes(row[0]), str(row[1])) if row else None

    async def undelivered(self, scope: Scope) -> list[Job]:
        """Paid jobs of ``scope`` whose delivery failed, oldest first (for a later ``/jobs``)."""
        return await self._select(
            "WHERE state = ? AND scope = ? ORDER BY created_at", (JobState.UNDELIVERED.value, str(scope))
        )

    async def purge(self, older_than: timedelta) -> int:
        """Delete finished jobs (with the prompts they keep) last touched longer ago than
        ``older_than``; returns how many. Unfinished ones stay, whatever their age: a restart
        still owes them a delivery or a refund."""
        cutoff = (self._database.clock.utc() - older_than).isoformat()
        marks = ", ".join("?" * len(FINISHED))
        written = await self._database.write(
            f"DELETE FROM jobs WHERE state IN ({marks}) AND updated_at < ?",
            (*(state.value for state in FINISHED), cutoff),
        )
        if written.rowcount:
            log.info("purged %d finished jobs older than %s", written.rowcount, cutoff)
        return written.rowcount

    async def get(self, job_id: str) -> Job | None:
        jobs = await self._select("WHERE id = ?", (job_id,))
        return jobs[0] if jobs else None

    async def unfinished(self) -> list[Job]:
        """Jobs a previous process left before their end, oldest first."""
        marks = ", ".join("?" * len(UNFINISHED))
        return await self._select(
            f"WHERE state IN ({marks}) ORDER BY created_at", tuple(state.value for state in UNFINISHED)
        )

    async def abandoned(self, *, owner: str) -> list[Job]:
        """Unfinished jobs whose hold's lease ran out, not ``owner``'s, oldest first."""
        marks = ", ".join("?" * len(UNFINISHED))
        return await self._select(
            f"WHERE state IN ({marks}) AND transaction_id IN (SELECT id FROM transactions "
            "WHERE status = 'held' AND lease_until < ? AND owner != ?) ORDER BY created_at",
            (*(state.value for state in UNFINISHED), self._now(), owner),
        )

    async def _select(self, where: str, params: tuple[object, ...]) -> list[Job]:
        rows = await self._database.fetchall(
            'SELECT id, scope, "user", intent, prompt, state, transaction_id, destination, checkpoint, '
            "conversation "
            f"FROM jobs {where}",
            params,
        )
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


class JobRow:
    """The job row of one run, written when the job first reaches a state: a job admitted at once
    is created running, which saves a write before the provider call."""

    def __init__(
        self, jobs: JobStore | None, request: Request, route: Route, hold: Hold, *, exists: bool
    ) -> None:
        self._jobs = jobs
        self._request = request
        self._route = route
        self._hold = hold
        self._exists = exists
        self._state: JobState | None = None

    async def enter(self, state: JobState) -> None:
        if self._jobs is None or state is self._state:
            return
        self._state = state
        if self._exists:
            await self._jobs.advance(self._request.id, state)
            return
        self._exists = True
        route = self._route
        await self._jobs.create(
            self._request, intent=route.intent, prompt=route.prompt, hold=self._hold, state=state
        )


@dataclass(frozen=True, slots=True)
class Resumption:
    """A job from before a restart, ready to be rendered at ``request.destination``."""

    request: Request
    transaction_id: int
    parts: AsyncIterator[Part]


ResumeRun = Callable[[Job, Hold, Callable[[], AsyncIterator[GeneratorPart]]], AsyncIterator[Part]]
"""Runs a resumed job like any other (the engine's ``_resumed``), given the generator's ``resume``."""


async def resume_unfinished(
    jobs: JobStore,
    ledger: Ledger,
    generators: Mapping[Intent, object],
    *,
    run: ResumeRun,
    reaches: Callable[[Destination | None], bool] | None = None,
) -> list[Resumption]:
    """Pick up the jobs a previous process left unfinished (see ``Engine.resume_unfinished``):
    only those whose hold's lease ran out (their process is gone), never a live process's, and
    with ``reaches``, only those this process can deliver.

    A job with a checkpoint is resumed from it (never resubmitted) and delivered to its
    destination; a delivered one is only charged; one that never reached its provider is
    refunded and its requester told to ask again.
    """
    resumptions: list[Resumption] = []
    for job in await jobs.unfinished():
        if reaches is not None and not reaches(job.destination):
            continue
        hold = await ledger.hold_for(job.transaction_id)
        if hold is None:
            await jobs.advance(job.id, JobState.DONE, error="ledger closed before the restart")
        elif await ledger.leases.take_over(hold.transaction_id):
            resumption = await _pick_up(job, hold, jobs, ledger, generators, run=run, taken_over=False)
            if resumption is not None:
                resumptions.append(resumption)
        # else: a live process is working on it
    return resumptions


async def take_over_abandoned(
    jobs: JobStore,
    ledger: Ledger,
    generators: Mapping[Intent, object],
    *,
    run: ResumeRun,
    reaches: Callable[[Destination | None], bool],
) -> list[Resumption]:
    """While running: claim the unfinished jobs whose owner stopped renewing its lease (it died)
    and that this process can deliver (``reaches``), and pick them up as a start would. Of several
    live processes exactly one claims each job (``Leases.take_over``); our own jobs are never
    claimed, even when a stalled loop let their lease lapse."""
    resumptions: list[Resumption] = []
    for job in await jobs.abandoned(owner=ledger.leases.owner):
        if not reaches(job.destination):
            continue
        hold = await ledger.hold_for(job.transaction_id)
        if hold is None or not await ledger.leases.take_over(hold.transaction_id):
            continue  # settled meanwhile, or another live process claimed it first
        log.warning(
            "taking over job %s (%s) whose process stopped renewing its lease", job.id, job.intent.value
        )
        resumption = await _pick_up(job, hold, jobs, ledger, generators, run=run, taken_over=True)
        if resumption is not None:
            resumptions.append(resumption)
    return resumptions


async def _pick_up(
    job: Job,
    hold: Hold,
    jobs: JobStore,
    ledger: Ledger,
    generators: Mapping[Intent, object],
    *,
    run: ResumeRun,
    taken_over: bool,
) -> Resumption | None:
    """A job whose hold this process now owns: charge it if delivered, resume it from its
    checkpoint, or refund it with an apology if the provider never had it. ``taken_over``: from
    another process that stopped, not from this one's own previous run."""
    request = job.request()
    generator = generators.get(job.intent)
    if job.state is JobState.DELIVERED:
        await settle(ledger, hold, hold.amount, job.intent)
        await jobs.advance(job.id, JobState.DONE)
        return None
    if job.checkpoint and isinstance(generator, Resumable):
        log.info("resuming job %s (%s) from its checkpoint", job.id, job.intent.value)
        resume = partial(generator.resume, job.checkpoint, job.prompt, request)
        return Resumption(request, job.transaction_id, run(job, hold, resume))
    stopped = "its process stopped" if taken_over else "restarted"
    await ledger.refund(hold, note=f"{stopped} before the provider had the job")
    await jobs.advance(job.id, JobState.REFUNDED, error=f"{stopped} before submission")
    interrupted = "I was interrupted" if taken_over else "I restarted"
    apology = failure(
        job.intent,
        "failed",
        f"{interrupted} before your request for {WHAT[job.intent]} (“{job.prompt[:80]}”) "
        "reached the provider. Nothing was charged; please ask again.",
    )
    return Resumption(request, job.transaction_id, single(apology))
