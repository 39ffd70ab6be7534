"""Remote llama-servers: library entries that point at a server running elsewhere (pure Python).

A remote entry is a row of the ``models`` table whose :data:`REMOTE_URL` column holds the base URL
of a llama-server that another machine runs (its ``type`` is :data:`REMOTE_TYPE`). llamadash never
starts or stops it: it *attaches* to it (monitors ``/health``, ``/metrics`` and ``/slots``) and
*detaches*. The key it sends as ``Authorization: Bearer`` is kept in the entry's ``api_key`` column,
the secret column every model has (masked in listings, left out of exports unless asked).

A URL is data: an imported entry can make llamadash *connect* to a host, never run a program. The
URL is checked here once (:func:`check_remote_url`) for the CLI, the window, the database and the
imports alike: ``http`` or ``https``, a host, an optional port and path; no user name or password
(a credential in a URL would be shown everywhere the URL is), no query, no fragment.

Where no log is available (the server's output is on another machine), the requests it answered
are told by its ``/slots`` (:class:`SlotRequestTracker`): a slot seen busy with a task and then
idle, or with another task, has finished that task. Their figures come from ``/metrics`` asked right
after (:func:`with_counters`): llama-server adds a request's tokens and times to its counters when
the request ends, so when one request ended since the last reading, the counters' growth is
exactly that request's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llamadash.core.requests_log import RequestRecord, RequestStatus

if TYPE_CHECKING:  # the pollers' readings: the module is theirs (not needed to start the window)
    from llamadash.core.throughput import SlotReading

__all__ = [
    "COUNTERS",
    "REMOTE_TYPE",
    "REMOTE_URL",
    "RemoteUrlError",
    "SlotRequestTracker",
    "check_remote_url",
    "is_remote",
    "retry_delay_s",
    "with_counters",
]

#: The ``models`` column that holds a remote entry's base URL (``NULL`` for a local model).
REMOTE_URL = "remote_url"
#: The ``type`` of a remote entry.
REMOTE_TYPE = "remote"
#: Longest URL accepted (an address, not a document).
MAX_URL_LENGTH = 2048
#: Backoff of the reconnection attempts to an unreachable server: first delay, cap (seconds).
RETRY_FIRST_S = 2.0
RETRY_MAX_S = 60.0


#: The ``/metrics`` counters a request's figures are read from (the record field each gives).
COUNTERS = {
    "llamacpp:prompt_tokens_total": "prompt_tokens",
    "llamacpp:prompt_tokens_cached_total": "cached_tokens",
    "llamacpp:tokens_predicted_total": "generated_tokens",
    "llamacpp:prompt_seconds_total": "prompt_ms",
    "llamacpp:tokens_predicted_seconds_total": "generation_ms",
}


class RemoteUrlError(ValueError):
    """The text is not a usable llama-server base URL; the message says why."""


def check_remote_url(text: object) -> str:
    """``text`` as a remote server's base URL (trimmed, without a trailing ``/``).

    Raises:
        RemoteUrlError: Not ``http(s)://host[:port][/path]``, or it carries a user name or password,
            a query or a fragment, or control characters.
    """
    if not isinstance(text, str):
        raise RemoteUrlError(f"a server URL is text, got {type(text).__name__}")
    url = text.strip()
    if not url:
        raise RemoteUrlError("the server URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise RemoteUrlError(f"the server URL is longer than {MAX_URL_LENGTH} characters")
    if any(not c.isprintable() or c.isspace() for c in url):
        raise RemoteUrlError("the server URL holds spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RemoteUrlError(f"not a URL: {url!r} ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise RemoteUrlError(f"the server URL must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise RemoteUrlError(f"the server URL names no host: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise RemoteUrlError(
            "the server URL must not hold a user name or password; give the API key with --api-key-env "
            "(or in the window's API key field)"
        )
    if parts.query or parts.fragment:
        raise RemoteUrlError(f"the server URL must not have a query or fragment: {url!r}")
    if port == 0:
        raise RemoteUrlError(f"port 0 is not a server's port: {url!r}")
    return url.rstrip("/")


def is_remote(model: Mapping[str, Any]) -> bool:
    """Whether a library entry is a remote server (it has a :data:`REMOTE_URL`)."""
    return bool(model.get(REMOTE_URL))


def retry_delay_s(failures: int, *, first_s: float = RETRY_FIRST_S, max_s: float = RETRY_MAX_S) -> float:
    """Seconds before the next attempt after ``failures`` failed ones in a row: doubling, capped."""
    if failures <= 0:
        return 0.0
    return float(min(max_s, first_s * 2 ** min(failures - 1, 30)))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Seen:
    task: int | None
    processing: bool
    started_at_ms: int | None = None
    decoded: int | None = None
    prompt_processed: int | None = None
    prompt_cached: int | None = None


@dataclass
class SlotRequestTracker:
    """The requests a server finished, told by its successive ``/slots`` snapshots.

    The first snapshot is the baseline (what the slots did before is not known). After it, a task
    is recorded once its slot is seen idle or on another task: its start is when it was first seen
    busy, its figures the last ones seen while it ran (``/slots`` resets them when a task ends), so
    a task that began and ended between two snapshots is recorded with ``None`` figures, never 0.

    Attributes:
        model: The name put on the records.
    """

    model: str | None = None
    _slots: dict[int, _Seen] = field(default_factory=dict)
    _baseline: bool = False

    def reset(self) -> None:
        """Forget everything (a new attachment): the next snapshot is a baseline again."""
        self._slots.clear()
        self._baseline = False

    def feed(self, readings: Iterable[SlotReading], now_ms: int | None = None) -> list[RequestRecord]:
        """One snapshot; returns the records of the tasks it shows finished."""
        now = _now_ms() if now_ms is None else now_ms
        records: list[RequestRecord] = []
        first = not self._baseline
        self._baseline = True
        for reading in readings:
            seen = self._slots.get(reading.slot)
            if first or seen is None:
                self._slots[reading.slot] = self._new(reading, now, known_start=False)
                continue
            same_task = reading.task == seen.task
            if same_task and reading.processing:
                seen.processing = True
                seen.decoded = reading.decoded if reading.decoded is not None else seen.decoded
                seen.prompt_processed = _latest(reading.prompt_processed, seen.prompt_processed)
                seen.prompt_cached = _latest(reading.prompt_cached, seen.prompt_cached)
                continue
            if same_task and not seen.processing:
                continue  # still idle after the same task
            if seen.processing and seen.task is not None:
                records.append(self._record(reading.slot, seen, now, complete=True))
            if not same_task and reading.task is not None and not reading.processing:
                # a task that ran and ended between two snapshots: known to exist, figures unknown
                records.append(
                    RequestRecord(
                        slot=reading.slot,
                        task=reading.task,
                        finished_at_ms=now,
                        status=RequestStatus.FINISHED,
                        model=self.model,
                    )
                )
            self._slots[reading.slot] = self._new(reading, now, known_start=not same_task)
        return records

    @staticmethod
    def _new(reading: SlotReading, now: int, *, known_start: bool) -> _Seen:
        return _Seen(
            task=reading.task,
            processing=reading.processing,
            started_at_ms=now if reading.processing and known_start else None,
            decoded=reading.decoded if reading.processing else None,
            prompt_processed=reading.prompt_processed if reading.processing else None,
            prompt_cached=reading.prompt_cached if reading.processing else None,
        )

    def _record(self, slot: int, seen: _Seen, now: int, *, complete: bool) -> RequestRecord:
        assert seen.task is not None
        return RequestRecord(
            slot=slot,
            task=seen.task,
            finished_at_ms=now,
            status=RequestStatus.FINISHED if complete else RequestStatus.INCOMPLETE,
            model=self.model,
            started_at_ms=seen.started_at_ms,
            prompt_tokens=seen.prompt_processed,
            cached_tokens=seen.prompt_cached,
            generated_tokens=seen.decoded,
        )


def _latest(new: int | None, old: int | None) -> int | None:
    return new if new is not None else old


def with_counters(
    records: list[RequestRecord], before: Mapping[str, float] | None, after: Mapping[str, float]
) -> list[RequestRecord]:
    """``records`` (the requests that ended between two ``/metrics`` readings) with their figures.

    With one record and both readings, its tokens and times are the growth of :data:`COUNTERS`
    (exact); with several, the split between them is not known and they keep what ``/slots`` told.
    A counter that went down (the server restarted) tells nothing.
    """
    if len(records) != 1 or before is None:
        return records
    values: dict[str, Any] = {}
    for counter, attr in COUNTERS.items():
        if counter in before and counter in after and after[counter] >= before[counter]:
            growth = after[counter] - before[counter]
            values[attr] = round(growth * 1000.0, 3) if attr.endswith("_ms") else round(growth)
    if not values:
        return records
    prompt_ms, generation_ms = values.get("prompt_ms"), values.get("generation_ms")
    if prompt_ms and values.get("prompt_tokens") is not None:
        values["prompt_tps"] = values["prompt_tokens"] / (prompt_ms / 1000.0)
    if generation_ms and values.get("generated_tokens") is not None:
        values["generation_tps"] = values["generated_tokens"] / (generation_ms / 1000.0)
    if prompt_ms is not None and generation_ms is not None:
        values["total_ms"] = prompt_ms + generation_ms
    return [replace(records[0], **values)]
