"""Export and import of the log as NDJSON: one event per line, in log order.

An import goes through the same rules as every append (og_append and the append trigger):
idempotency by event id (importing a file twice appends nothing the second time), the
stream version as the expected version, the state machine and the amount rules. Lines are
sent in batches; each batch commits whole, and a refused line is reported with its line
number and code while the rest of its batch still goes in.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import orjson

from gql import traces
from gql.errors import BadUserInput
from gql.events import Position
from gql.store import Connection
from gql.store.exchange import ImportedCustomer, ImportedEvent, Refused, export_lines, import_batch
from gql.store.tallies import tidy_tallies

BATCH = 1000
MAX_LINE = 1024 * 1024  # an import line's bytes: a 64 KB payload, escaped, and the event's fields
_CHUNK = 64 * 1024
_BOM = b"\xef\xbb\xbf"


@dataclass
class Imported:
    appended: int = 0
    deduplicated: int = 0
    refused: list[Refused] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return self.appended + self.deduplicated + len(self.refused)


def _required(value: Any, key: str) -> Any:
    if value is None:
        raise BadUserInput(f"{key} is required", field=key)
    return value


def _uuid(data: dict[str, Any], key: str) -> uuid.UUID | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise BadUserInput(f"{key} must be a UUID", field=key) from None


def _time(data: dict[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadUserInput(f"{key} must be an ISO 8601 time with an offset", field=key) from None
    if parsed.tzinfo is None:
        raise BadUserInput(f"{key} must be an ISO 8601 time with an offset", field=key)
    return parsed


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
        raise BadUserInput(f"{key} must be a positive whole number", field=key)
    return value


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadUserInput(f"{key} must be a string", field=key)
    return value


def _no_nul(value: Any, key: str) -> None:
    """PostgreSQL stores no NUL character in text or jsonb: refuse one wherever it hides."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadUserInput(f"{key} contains a NUL character", field=key)
    elif isinstance(value, dict):
        for name, item in value.items():
            _no_nul(name, key)
            _no_nul(item, key)
    elif isinstance(value, list):
        for item in value:
            _no_nul(item, key)


def parse_line(number: int, raw: bytes) -> ImportedEvent:
    """One line of an export (or another system's file with the same fields)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadUserInput("the line is not JSON", field="line") from None
    if not isinstance(data, dict):
        raise BadUserInput("the line must be a JSON object (one event)", field="line")
    for key, value in data.items():
        _no_nul(value, key)
    payload = data.get("payload", {})
    if not isinstance(payload, dict):
        raise BadUserInput("payload must be a JSON object", field="payload")
    event_type: str = _required(_text(data, "event_type"), "event_type")
    customer_id = _uuid(data, "customer_id")
    customer = None
    if event_type == "OrderPlaced":
        if customer_id is not None and "customerId" not in payload:
            payload = {**payload, "customerId": str(customer_id)}
        named = data.get("customer")
        if isinstance(named, dict) and customer_id is not None:
            forgotten_at = _time(named, "forgotten_at")
            if forgotten_at is None:
                customer = ImportedCustomer(
                    customer_id, _required(_text(named, "name"), "customer.name"),
                    _required(_text(named, "email"), "customer.email"),
                    _time(named, "registered_at"))
            else:  # forgotten where it was exported: nothing personal to take
                customer = ImportedCustomer(customer_id, None, None, _time(named, "registered_at"),
                                            forgotten_at)
    return ImportedEvent(
        line=number, event_id=_required(_uuid(data, "event_id"), "event_id"),
        order_id=_required(_uuid(data, "order_id"), "order_id"), event_type=event_type,
        payload=payload, stream_version=_int(data, "stream_version"),
        occurred_at=_time(data, "occurred_at"), correlation_id=_uuid(data, "correlation_id"),
        causation_id=_uuid(data, "causation_id"), actor_type=_text(data, "actor_type"),
        actor_id=_text(data, "actor_id"), schema_version=_int(data, "schema_version"),
        customer=customer, trace_parent=_trace_parent(data),
    )


def _trace_parent(data: dict[str, Any]) -> str | None:
    value = _text(data, "trace_parent")
    if value is not None and traces.trace_id_of(value) is None:
        raise BadUserInput("trace_parent must be a W3C traceparent such as "
                           "00-<32 hex>-<16 hex>-01", field="trace_parent")
    return value


@dataclass(frozen=True)
class LineTooLong:
    """A line longer than an import reads: skipped without being held in memory."""

    size: int


def read_lines(source: IO[bytes], limit: int = MAX_LINE) -> Iterator[bytes | LineTooLong]:
    """The file's lines (with their line ends), never holding more than `limit` bytes of one:
    the rest of a longer line is read and dropped in chunks."""
    while True:
        line = source.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while not line.endswith(b"\n"):
            line = source.readline(_CHUNK)
            if not line:
                break
            size += len(line)
        yield LineTooLong(size)


def _batches(lines: Iterable[bytes | LineTooLong], size: int, result: Imported,
             progress: Callable[[int], None]) -> Iterator[list[ImportedEvent]]:
    batch: list[ImportedEvent] = []
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, LineTooLong):
            progress(raw.size)
            result.refused.append(Refused(number, BadUserInput.code, (
                f"the line is longer than {MAX_LINE // 1024} KB (an event's data is at most "
                "64 KB); it was skipped unread")))
            continue
        progress(len(raw))
        if number == 1 and raw.startswith(_BOM):  # a UTF-8 byte order mark is no content
            raw = raw[len(_BOM):]
        if not raw.strip():
            continue
        try:
            batch.append(parse_line(number, raw))
        except BadUserInput as exc:
            result.refused.append(Refused(number, exc.code, exc.message))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def import_lines(conn: Connection, lines: Iterable[bytes | LineTooLong], *,
                       batch_size: int = BATCH,
                       progress: Callable[[int], None] = lambda n: None,
                       appended: Callable[[int], None] = lambda n: None) -> Imported:
    """Load NDJSON lines (bytes, as `read_lines` gives them from a file); `progress` gets
    the bytes consumed."""
    result = Imported()
    for batch in _batches(lines, batch_size, result, progress):
        done = await import_batch(conn, batch)
        result.appended += done.appended
        result.deduplicated += done.deduplicated
        result.refused.extend(done.refused)
        appended(len(batch))
    await tidy_tallies(conn)  # each imported event left its change to the tallies
    result.refused.sort(key=lambda r: r.line)
    return result


@contextlib.contextmanager
def output_file(path: str) -> Iterator[IO[bytes]]:
    """Where an export writes: standard output for "-", else a temporary file beside `path`
    that replaces it only once the block ends without an error, so a failed export never
    destroys the last good one."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    target = os.path.abspath(path)
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(target),
                                     prefix=f".{os.path.basename(target)}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as sink:
            yield sink
            sink.flush()
            os.fsync(sink.fileno())
        os.chmod(temporary, _mode_for(target))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _mode_for(target: str) -> int:
    """The file's mode when it exists, else what a new file gets under the umask."""
    try:
        return os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


async def export_to(conn: Connection, out: IO[bytes], *, after: Position,
                    types: Sequence[str] | None = None,
                    progress: Callable[[int], None] = lambda n: None) -> int:
    """Write the log after `after` as NDJSON; returns how many events were written."""
    count = 0
    async for line in export_lines(conn, after=after, types=types):
        out.write(line.encode())
        out.write(b"\n")
        count += 1
        if count % 1000 == 0:
            progress(1000)
    progress(count % 1000)
    return count
