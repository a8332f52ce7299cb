"""Server-sent event streams of job events (DESIGN §8a): `GET /jobs/{job_id}/stream` and `GET /events/stream`.

A stream is opened like any API read (DRF's authenticators, `JobPermission`, the API's JSON errors), then
replays the log after its cursor and follows it. The database is the only source of events: a PostgreSQL
notice (`jobs.events.EVENTS_CHANNEL`) only wakes a stream up to query it again, and a slower poll covers a lost
notice; on SQLite the stream polls. Reads run in the request's own thread and let go of their connection
afterwards, so an open stream holds no database connection while it waits (on PostgreSQL it holds one
listening connection of its own).
"""
import asyncio
import json
import re
import threading
import time
from dataclasses import dataclass, field

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.db.models import Max
from django.http import JsonResponse, StreamingHttpResponse
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from contracts import CONTENT_ID
from jobs import selectors, services
from jobs.events import EVENTS_CHANNEL
from jobs.models import JobEvent, JobState
from jobs.pipelines import TERMINAL_STATUSES, EventType

from .exceptions import error_body
from .http import KIND_CHOICES, StrictCharField, StrictInput, StrictRegexField, read_query

BATCH = 500  # events read at a time
CURSOR_RE = re.compile(r"[0-9]{1,18}")


# -- the per-process limit -------------------------------------------------------------------------------------

class Slots:
    """Open streams of this process; past EAM_STREAM_MAX_CONNECTIONS a new one is refused."""

    def __init__(self):
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.open >= settings.EAM_STREAM_MAX_CONNECTIONS:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


SLOTS = Slots()


# -- opening a stream: who may, which job, from where ----------------------------------------------------------

class StreamQuery(StrictInput):
    cursor = StrictCharField(required=False, max_length=40, trim_whitespace=False,
                             help_text="resume after this event id (the Last-Event-ID header wins)")


class AllEventsQuery(StreamQuery):
    job_id = StrictRegexField(CONTENT_ID.pattern, required=False)
    root_job_id = StrictRegexField(CONTENT_ID.pattern, required=False)
    kind = serializers.ChoiceField(choices=KIND_CHOICES, required=False)
    event_type = serializers.ChoiceField(choices=[t.value for t in EventType], required=False)


FILTERS = {"job_id": "job_id", "root_job_id": "job__root_job_id", "kind": "job__kind", "event_type": "event_type"}


@dataclass
class Plan:
    """Where a stream starts: after `cursor`, or, when `refused` names why, only a `cursor-invalid` event."""

    cursor: int = 0
    refused: str | None = None
    job_id: str | None = None
    filters: dict = field(default_factory=dict)


def _cursor_given(request, query: dict) -> str | None:
    # A browser's EventSource reconnects to the same URL with Last-Event-ID: the header is the newer position.
    return request.META.get("HTTP_LAST_EVENT_ID", query.get("cursor"))


def _resolve(given: str | None, *, last: int, default: int) -> Plan:
    if given is None:
        return Plan(cursor=default)
    if not CURSOR_RE.fullmatch(given):
        return Plan(refused="malformed cursor: an event id is a non-negative integer")
    if int(given) > last:
        return Plan(refused=f"cursor {given} is past the end of the log (last {last})")
    return Plan(cursor=int(given))


def plan_job_stream(request, job_id: str) -> Plan:
    """A job's stream starts at its first event, or after the seq it is given."""
    services.check_job_id(job_id)
    query = read_query(request, StreamQuery)
    state = services.get_job(job_id).state
    plan = _resolve(_cursor_given(request, query), last=state.last_seq, default=0)
    plan.job_id = job_id
    return plan


def plan_all_events(request) -> Plan:
    """The all-jobs stream starts with the next event appended, or after the global id it is given (0: from the
    first event ever). Every reader may read every job, so its filters are the caller's own."""
    query = read_query(request, AllEventsQuery)
    last = JobEvent.objects.aggregate(last=Max("id"))["last"] or 0
    plan = _resolve(_cursor_given(request, query), last=last, default=last)
    plan.filters = {FILTERS[name]: value for name, value in query.items() if name in FILTERS}
    return plan


class StreamOpening(APIView):
    """Opens a stream exactly as the JSON API answers a read: the same authenticators, permission and error
    answers. Its 200 carries the stream's `Plan` and is never rendered: the async view streams instead."""

    planner = None

    def get(self, request, **kwargs):
        return Response(self.planner(request, **kwargs))


open_job_stream = StreamOpening.as_view(planner=plan_job_stream)
open_all_events = StreamOpening.as_view(planner=plan_all_events)


# -- reads -----------------------------------------------------------------------------------------------------

def read(function):
    """Run a short read in the request's thread, then close its connection: a stream holds none while it waits."""

    def reading(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    return sync_to_async(reading)


@dataclass
class Batch:
    """What one read found: the messages to send and the cursor after them, and what to do next."""

    messages: list[bytes]
    cursor: int
    more: bool = False  # a full page: read on at once
    held: bool = False  # stopped before an id not committed yet: read again soon, notice or not
    ended: str | None = None  # the job's final status, once every event it reached was read


@read
def job_batch(job_id: str, after: int) -> Batch:
    """The job's events after seq `after`. The state is read first: every event it counts was committed with it."""
    state = JobState.objects.only("status", "last_seq").get(job_id=job_id)
    rows = list(JobEvent.objects.filter(job_id=job_id, seq__gt=after).order_by("seq")[:BATCH])
    cursor = rows[-1].seq if rows else after
    return Batch([message(row.seq, row.event_type, selectors.event_view(row)) for row in rows], cursor,
                 more=len(rows) == BATCH,
                 ended=state.status if state.status in TERMINAL_STATUSES and cursor >= state.last_seq else None)


@read
def all_events_batch(filters: dict, after: int) -> Batch:
    """Events of every job after global id `after` that pass `filters`, up to the safe horizon."""
    horizon, held, read = selectors.event_horizon(after, limit=BATCH)
    rows = JobEvent.objects.filter(id__gt=after, id__lte=horizon, **filters).order_by("id") if horizon > after else []
    return Batch([message(row.id, row.event_type, {**selectors.event_view(row), "job_id": row.job_id})
                  for row in rows], horizon, more=read == BATCH and not held, held=held)


# -- the wire format -------------------------------------------------------------------------------------------

HEARTBEAT = b": heartbeat\n\n"


def message(event_id: int | None, event: str, data: dict) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


# -- waiting for the next event --------------------------------------------------------------------------------

class Poll:
    """SQLite: nothing announces an event; wait the poll interval."""

    interval = property(lambda self: settings.EAM_STREAM_POLL_SECONDS)

    async def wait(self, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        return False

    async def close(self) -> None:
        pass


class Notices:
    """PostgreSQL: LISTEN on EVENTS_CHANNEL with a connection of the stream's own; a notice naming the job
    (any job for the all-jobs stream) ends the wait. A lost notice costs at most the safety poll."""

    def __init__(self, listener: psycopg.AsyncConnection, job_id: str | None):
        self.listener, self.job_id = listener, job_id

    interval = property(lambda self: settings.EAM_STREAM_SAFETY_POLL_SECONDS)

    @classmethod
    async def listen(cls, job_id: str | None) -> "Notices":
        params = connection.get_connection_params()
        for sync_only in ("cursor_factory", "context"):  # Django's own: made for its synchronous connections
            params.pop(sync_only, None)
        listener = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        await listener.execute(f"LISTEN {EVENTS_CHANNEL}")
        return cls(listener, job_id)

    async def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            async for notice in self.listener.notifies(timeout=left, stop_after=1):
                if self.job_id is None or notice.payload == self.job_id:
                    return True
        return False

    async def close(self) -> None:
        await self.listener.close()


async def wake_source(job_id: str | None):
    return await Notices.listen(job_id) if connection.vendor == "postgresql" else Poll()


# -- the streams -----------------------------------------------------------------------------------------------

async def follow(plan: Plan, batch):
    """Messages of a stream: what `batch(cursor)` finds, then waits for more, with heartbeats in between."""
    if plan.refused:
        yield message(None, "cursor-invalid", {"reason": plan.refused})
        return
    wake = await wake_source(plan.job_id)
    try:
        cursor, beat = plan.cursor, time.monotonic() + settings.EAM_STREAM_HEARTBEAT_SECONDS
        while True:
            found = await batch(cursor)
            cursor = found.cursor
            for item in found.messages:
                yield item
            if found.ended:
                yield message(None, "end", {"status": found.ended})
                return
            if found.more:
                continue
            deadline = time.monotonic() + (settings.EAM_STREAM_POLL_SECONDS if found.held else wake.interval)
            while True:
                now = time.monotonic()
                if now >= beat:
                    yield HEARTBEAT
                    beat = now + settings.EAM_STREAM_HEARTBEAT_SECONDS
                if now >= deadline or await wake.wait(max(0.0, min(deadline, beat) - now)):
                    break
    finally:
        await wake.close()


class Stream:
    """The response's body: `follow`'s messages, holding one of the process's slots until it ends. Django
    closes it when the response ends; a cancelled stream gives its slot back when its generator stops."""

    def __init__(self, messages):
        self.messages, self.held = messages, True

    async def __aiter__(self):
        try:
            async for item in self.messages:
                yield item
        finally:
            self.close()

    def close(self):
        if self.held:
            self.held = False
            SLOTS.give_back()


def too_many_streams() -> JsonResponse:
    limit = settings.EAM_STREAM_MAX_CONNECTIONS
    return JsonResponse(error_body(f"this server already holds {limit} open streams; try again shortly",
                                   "too_many_streams"), status=503, headers={"Retry-After": "5"})


def asgi_required() -> JsonResponse:
    # Under WSGI Django would gather an async body whole before sending any of it: a stream would never arrive.
    return JsonResponse(error_body("event streams need an ASGI server (uvicorn, or gunicorn with uvicorn workers)",
                                   "asgi_required"), status=501)


async def serve(request, opening, batch, **kwargs):
    """Take a slot, open the stream as `opening` says (or answer its error), then stream."""
    if not isinstance(request, ASGIRequest):
        return asgi_required()
    if not SLOTS.take():
        return too_many_streams()
    streaming = False
    try:
        answer = await read(opening)(request, **kwargs)
        if answer.status_code != 200:
            return answer.render()
        plan = answer.data
        response = StreamingHttpResponse(Stream(follow(plan, lambda cursor: batch(plan, cursor))),
                                         content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each message on at once
        streaming = True
        return response
    finally:
        if not streaming:
            SLOTS.give_back()


async def job_stream(request, job_id: str):
    """GET /jobs/{job_id}/stream: `id` is the event's seq; `end` once the job has ended and all was sent."""
    return await serve(request, open_job_stream, lambda plan, cursor: job_batch(plan.job_id, cursor), job_id=job_id)


async def all_events_stream(request):
    """GET /events/stream: every job's events, `id` the global event id, filtered by the query."""
    return await serve(request, open_all_events, lambda plan, cursor: all_events_batch(plan.filters, cursor))
