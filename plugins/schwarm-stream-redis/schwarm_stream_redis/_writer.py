"""One stream's log writer: a bounded in-memory queue flushed to Redis in batches.

The per-event hook only appends the event to a deque (no encoding, no I/O, no
clock read). One task per stream takes what is queued and writes it with one
round trip per batch, so entries reach Redis in delivery order. A batch is
flushed by size (``batch_max`` queued events), by timer (an event that arrives while
the writer is idle waits at most ``flush_interval`` for others to join it) and
at once when the stream ends, whatever its outcome: the terminal entry is
never held back.

``write_mode = "batched"`` (the default) stores the events of one write in
``events`` entries of up to ``batch_max`` events (``type = events``, id
``{last seq}-1``, see :func:`~schwarm_stream_redis._codec.encode_batch`: a
run of plain text chunks is one JSON array of their texts), and one write
takes everything queued: one round trip and one ``XADD`` per ``batch_max``
events, so neither redis-py nor the server pays per event, which is what
limited a stream to about 20k events/s. ``write_mode = "per_event"`` writes one entry per
event (the 0.1 layout). Readers understand both.

Failure handling (``on_redis_error``):

- ``fail``: the writer stops, and the stream is aborted with
  :class:`~schwarm_stream_redis.RedisSinkError`; at the end a terminal entry
  flagged ``incomplete`` is attempted so readers learn the log is broken.
- ``degrade``: the writer stops writing events, logs one warning, flags
  itself ``degraded`` and keeps trying to write a ``degraded`` terminal
  entry (so readers get :class:`~schwarm_stream_redis.StreamDegraded`); the
  stream itself goes on locally.

Entries after the first are only appended to an existing key: if the key
vanished (Redis restarted without persistence, the key expired or was
deleted) the write is refused instead of silently starting a new log with a
hole in it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schwarm_stream import Chunk

from ._codec import encode_batch, encode_end, encode_event, encode_start
from ._errors import RedisSinkError, StreamIdConflict
from ._keys import entry_id

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from schwarm_stream import Event, Stream

    from ._settings import RedisSettings

__all__ = ["LogWriter"]

log = logging.getLogger("schwarm_stream.redis")

WriterState = Literal["ok", "degraded", "failed"]

# A retried XADD of an entry that already reached Redis (same explicit id) is refused with
# this message: the entry is there, which is what we wanted.
_DUPLICATE = "equal or smaller than the target stream top item"

_ZERO = 0  # push() compares Chunk.index and .choice to it by identity


class _Terminal:
    """A queued terminal entry (the last thing a writer writes)."""

    __slots__ = ("fields", "seq")

    def __init__(self, seq: int, fields: dict[str, str]) -> None:
        self.seq = seq
        self.fields = fields


class LogWriter:
    """Writes one stream's events to its Redis Stream key, in order, batched.

    Public, read-only view for applications: :attr:`key`, :attr:`tenant`,
    :attr:`stream_id`, :attr:`state` (``ok``, ``degraded``, ``failed``),
    :attr:`degraded`, :attr:`error` and :attr:`written_seq` (the highest
    sequence number Redis acknowledged).
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        key: str,
        tenant: str,
        stream: Stream,
        settings: RedisSettings,
    ) -> None:
        self.key = key
        self.tenant = tenant
        self.stream_id = stream.id
        self.state: WriterState = "ok"
        self.error: RedisSinkError | None = None
        self.written_seq = -1
        self.ended = False  # the terminal entry (or degraded marker) is in Redis

        self._client = client
        self._stream = stream
        self._s = settings
        self._pending: deque[str | Event | _Terminal] = deque()
        self._wake = asyncio.Event()
        self._full = asyncio.Event()  # flush now: a full batch, the stream's end, or a failure
        self._drained = asyncio.Event()
        self._busy = False
        self._paused_by_us = False
        self._task: asyncio.Task[None] | None = None
        self._resume_below = max(settings.max_pending // 2, 1)
        self._start_taken = False
        self._packed = settings.write_mode == "batched"
        self._queued_seq = 0  # batched: the seq of the last event taken into a write (0: the start entry)
        # read per event by push(): plain ints, not model attributes
        self._batch_max = settings.batch_max
        self._max_pending = settings.max_pending
        self._check_at = min(settings.batch_max, settings.max_pending)
        #: Called with :attr:`written_seq` after every acknowledged write (benchmarks, monitoring).
        self.on_ack: Callable[[int], None] | None = None
        self.owner: object = None  # the plugin instance that opened this writer

    @property
    def degraded(self) -> bool:
        """True when the stream went on without Redis (``on_redis_error = "degrade"``)."""
        return self.state == "degraded"

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self, info: Mapping[str, Any]) -> None:
        """Write the start entry (creating the key), then start the flusher task.

        Awaited once per stream, so a reader handed the stream id afterwards finds the stream.
        """
        token = uuid.uuid4().hex
        self._start_taken = False
        try:
            fields = encode_start(info)
            fields["writer"] = token  # who owns this log: checked when the start id is already taken
            await self._execute([("start", fields, 0)])
            if self._start_taken:
                await self._check_owner(token)
        except StreamIdConflict as err:
            err.stream_id = self.stream_id
            self.error = err
            self.state = "failed"
            self.ended = True  # never write a marker into the other writer's log
            raise
        except RedisSinkError as err:
            self._failed(err, abort=False)  # fail mode: raising from stream_start fails the stream
            if self.state == "failed":
                raise
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"schwarm-redis-{self.stream_id}"
        )

    async def _check_owner(self, token: str) -> None:
        """The start id was taken: ours (a retried write that landed) or another writer's?"""
        try:
            found = await asyncio.wait_for(
                self._client.xrange(self.key, entry_id(0), entry_id(0)), self._s.write_timeout
            )
        except asyncio.TimeoutError:
            raise RedisSinkError(
                f"Redis read of {self.key} took longer than write_timeout={self._s.write_timeout}s",
                reason="timeout",
            ) from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise RedisSinkError(
                f"Redis unavailable while opening {self.key}: {type(exc).__name__}: {exc}",
                reason="unavailable",
            ) from exc
        owner = None
        if found:
            raw: Any = found[0][1] or {}
            owner = raw.get(b"writer", raw.get("writer"))
            if isinstance(owner, bytes):
                owner = owner.decode("ascii", "replace")
        if owner != token:
            raise StreamIdConflict(
                f"the Redis log {self.key} already belongs to another writer: stream id {self.stream_id} "
                "is in use (one writer per stream id)",
                provider=self._stream.provider,
            )

    def push(self, event: Event) -> None:
        """Queue one delivered event (the per-event hot path: an append, no I/O).

        Batched, a plain text chunk is queued as its text alone (``encode_batch`` writes a run of
        them as one JSON array): a queued ``str`` is not tracked by the garbage collector, while a
        queue of held events, thousands long when the consumer outruns Redis, made collections
        that cost as much as the encoding.
        """
        if self.state != "ok":
            return
        pending = self._pending
        if (
            self._packed
            and type(event) is Chunk
            # identity with the int 0: exact ints only (False == 0 and 0.0 == 0, but must be read back
            # as themselves); any other zero takes the general path, which is always exact
            and event.index is _ZERO
            and event.choice is _ZERO
            and event.kind == "text"
        ):
            pending.append(event.text)
        else:
            pending.append(event)
        n = len(pending)
        if n == 1:  # the flusher may be asleep on an empty queue (it clears _wake before draining)
            self._wake.set()
        if n < self._check_at:
            return
        if n == self._batch_max:
            # once, as the queue reaches a full batch: the flusher only waits on its timer while the
            # queue is shorter (it checks before clearing _full), so a later crossing sets it again
            self._full.set()
        if n >= self._max_pending and not self._paused_by_us:
            # backpressure: stop pulling from the provider until Redis caught up
            self._paused_by_us = True
            self._stream.pause()

    async def finish(
        self, seq: int, status: str, *, message: Mapping[str, Any] | None, error: Any = None
    ) -> None:
        """Queue the terminal entry and wait until Redis has everything (or the writer failed)."""
        if self.ended:
            return
        if self.state == "ok":
            self._pending.append(_Terminal(seq, encode_end(seq, status, message=message, error=error)))
            self._wake.set()
            self._full.set()  # the end is never held back by the flush timer
            await self.drain()
        elif self.state == "failed":
            # best effort: tell readers the log is broken (Redis may be back by now)
            await self._write_marker(seq, status if status != "complete" else "error", message, self.error)

    async def drain(self) -> None:
        """Wait until every queued entry was written (or dropped because the writer failed)."""
        while (self._pending or self._busy) and self.state == "ok":
            task = self._task
            if task is None or task.done():
                return  # no flusher left to wait for (finish() then reports what is missing)
            self._drained.clear()
            # every write is bounded by write_timeout; the poll also catches a flusher that ended
            try:
                await asyncio.wait_for(self._drained.wait(), self._s.write_timeout)
            except asyncio.TimeoutError:
                continue

    async def close(self, seq: int) -> None:
        """Stop the flusher; a degraded writer makes one last attempt at its marker first."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self.state == "degraded" and not self.ended:
            await self._write_marker(seq, "degraded", None, self.error)
        self._resume_stream()

    # -- the flusher -------------------------------------------------------------------------------

    async def _run(self) -> None:
        pending = self._pending
        batch_max = self._s.batch_max
        # items per round trip: per_event, batch_max entries; batched, everything queued (bounded by
        # max_pending, where the stream pauses) in entries of at most batch_max events each
        take = max(batch_max, self._s.max_pending) if self._packed else batch_max
        interval = self._s.flush_interval
        loop = asyncio.get_running_loop()
        while self.state == "ok":
            await self._wake.wait()
            self._wake.clear()
            idle = True  # the writer was waiting: the first queued event may wait for company
            while pending and self.state == "ok":
                if (
                    idle
                    and interval > 0
                    and len(pending) < batch_max
                    and not isinstance(pending[-1], _Terminal)
                ):
                    # flush by timer: one timer per batch, never per event
                    self._full.clear()
                    timer = loop.call_later(interval, self._full.set)
                    try:
                        await self._full.wait()
                    finally:
                        timer.cancel()
                    if self.state != "ok":
                        break
                # after a write, what queued meanwhile already waited one round trip: no timer again
                idle = False
                if len(pending) <= take:
                    batch = list(pending)  # the common case: everything queued goes in this write
                    pending.clear()
                else:
                    batch = [pending.popleft() for _ in range(take)]
                self._busy = True
                try:
                    await self._execute(self._encode(batch))
                    if isinstance(batch[-1], _Terminal):
                        self.ended = True
                    if self.on_ack is not None:
                        self.on_ack(self.written_seq)
                except RedisSinkError as err:
                    self._failed(err)
                except Exception as exc:  # never let the flusher die silently: drain() would wait forever
                    self._failed(
                        RedisSinkError(
                            f"could not write to the Redis log {self.key}: {type(exc).__name__}: {exc}",
                            reason="rejected",
                        )
                    )
                finally:
                    self._busy = False
                if self._paused_by_us and len(pending) <= self._resume_below:
                    self._resume_stream()
            self._drained.set()
        if self.state == "degraded":
            await self._retry_marker()

    def _encode(self, batch: list[str | Event | _Terminal]) -> list[tuple[str, dict[str, str], int]]:
        """The entries of one write: batched, its events in ``events`` entries of ``batch_max`` each."""
        if not self._packed:
            return [self._entry(item) for item in batch]
        tail = batch[-1]
        # only the last item of a batch can be the terminal entry: nothing is queued after it
        events = batch[:-1] if isinstance(tail, _Terminal) else batch
        out: list[tuple[str, dict[str, str], int]] = []
        size = self._batch_max
        first = self._queued_seq + 1  # every delivered event is queued: seqs are contiguous
        for i in range(0, len(events), size):
            part = events[i : i + size] if len(events) > size else events
            last = first + len(part) - 1
            out.append(("event", encode_batch(part, first), last))  # type: ignore[arg-type]
            first = last + 1
        if isinstance(tail, _Terminal):
            if tail.seq != first:
                raise ValueError(f"the terminal entry has seq {tail.seq}, the events end at seq {first - 1}")
            out.append(("end", tail.fields, tail.seq))
        self._queued_seq = first - 1
        return out

    @staticmethod
    def _entry(item: str | Event | _Terminal) -> tuple[str, dict[str, str], int]:
        if isinstance(item, _Terminal):
            return ("end", item.fields, item.seq)
        # per_event mode queues events only (never a bare text)
        return ("event", encode_event(item), item.seq)  # type: ignore[arg-type,union-attr]

    async def _execute(self, entries: list[tuple[str, dict[str, str], int]]) -> None:
        """One pipeline round trip: XADD every entry, then EXPIRE. Raises RedisSinkError."""
        try:
            return await self._execute_checked(entries)
        except RedisSinkError:
            raise
        except Exception as exc:  # an encoding error or a client bug: a typed failure, never a hang
            raise RedisSinkError(
                f"could not write to the Redis log {self.key}: {type(exc).__name__}: {exc}",
                reason="rejected",
            ) from exc

    async def _execute_checked(self, entries: list[tuple[str, dict[str, str], int]]) -> None:
        s = self._s
        pipe = self._client.pipeline(transaction=False)
        for kind, fields, seq in entries:
            if self._packed:
                # keep every event newer than the last maxlen; entries hold many events, so trim by id
                floor = seq - s.maxlen + 1
                trim: dict[str, Any] = {"minid": entry_id(floor)} if floor > 0 else {}
            else:
                trim = {"maxlen": s.maxlen}
            # only the start entry may create the key; a missing key later means the log was lost
            pipe.xadd(
                self.key,
                fields,  # type: ignore[arg-type]
                id=entry_id(seq),
                approximate=True,
                nomkstream=kind != "start" and kind != "marker",
                **trim,
            )
        pipe.expire(self.key, s.ttl)
        try:
            results = await asyncio.wait_for(pipe.execute(raise_on_error=False), s.write_timeout)
        except asyncio.TimeoutError:
            raise RedisSinkError(
                f"Redis write to {self.key} took longer than write_timeout={s.write_timeout}s",
                reason="timeout",
            ) from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise RedisSinkError(
                f"Redis unavailable while writing {self.key}: {type(exc).__name__}: {exc}",
                reason="unavailable",
            ) from exc
        except RedisError as exc:
            raise RedisSinkError(f"Redis error while writing {self.key}: {exc}", reason="rejected") from exc
        for (_kind, _, seq), res in zip(entries, results, strict=False):
            if isinstance(res, ResponseError) and _DUPLICATE in str(res):
                if _kind == "start":
                    self._start_taken = True  # open() checks whose start entry it is
                continue  # a retried write that had already landed
            if isinstance(res, BaseException):
                reason = "unavailable" if isinstance(res, (RedisConnectionError, OSError)) else "rejected"
                raise RedisSinkError(
                    f"Redis refused entry seq={seq} of {self.key}: {res}", reason=reason
                ) from res
            if res is None:
                raise RedisSinkError(
                    f"the Redis log {self.key} vanished mid-stream (server restarted without persistence, "
                    f"key expired or deleted) before entry seq={seq}",
                    reason="log_lost",
                )
            self.written_seq = seq

    # -- failure -----------------------------------------------------------------------------------

    def _failed(self, err: RedisSinkError, *, abort: bool = True) -> None:
        if self.state != "ok":
            return
        err.stream_id = self.stream_id
        self.error = err
        self._pending.clear()
        if self._s.on_redis_error == "fail":
            self.state = "failed"
            log.warning("stream %s: Redis log failed, failing the stream: %s", self.stream_id, err)
            if abort:
                self._stream.abort(err)
        else:
            self.state = "degraded"
            log.warning(
                "stream %s: Redis log degraded, continuing without Redis (readers will be told): %s",
                self.stream_id,
                err,
            )
        self._resume_stream()
        self._drained.set()
        self._full.set()
        self._wake.set()  # let the flusher see the new state

    def _resume_stream(self) -> None:
        if self._paused_by_us:
            self._paused_by_us = False
            self._stream.resume()

    async def _retry_marker(self) -> None:
        """Keep trying to write the ``degraded`` marker until it lands or the stream ends."""
        delay = 0.05
        while not self.ended:
            await self._write_marker(self._stream.events_delivered + 1, "degraded", None, self.error)
            if self.ended:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _write_marker(self, seq: int, status: str, message: Any, error: Any) -> None:
        """Write a terminal entry flagged ``incomplete`` (may create the key). Never raises."""
        err = {"type": type(error).__name__, "message": str(error)} if error is not None else None
        fields = encode_end(seq, status, message=message, error=err)
        fields["incomplete"] = "1"
        try:
            await self._execute([("marker", fields, seq)])
        except RedisSinkError as exc:
            log.debug("stream %s: could not write the %s marker yet: %s", self.stream_id, status, exc)
            return
        self.ended = True
