"""The words the order domain is declared in: read-model fields, event data, rules, grants.

A declaration says what a fact is once; the database's checks and fold (gql/store/rules.py),
the GraphQL types, inputs and mutations (gql/schema/…) and the tests' oracles are derived from
it. Rules and state changes are SQL expressions over three names:

- `s`: the order's read model before the event (a row of `orders_current`);
- `d`: the event's data, one typed value per declared key (`d.amount` is numeric, `d.sku` text);
- `e`: the event's row (`e.occurred_at`, `e.customer_id`, …).

This module names things only: it imports neither the database driver nor GraphQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# -- what one value of an event's data is ------------------------------------------------
TEXT = "text"  # a non-empty string of at most 200 characters
MONEY = "money"  # an amount in the order's currency, at most its minor units
QUANTITY = "quantity"  # a whole number from 1 to 1,000,000
CURRENCY = "currency"  # an ISO 4217 code of the `currencies` table
CUSTOMER = "customer"  # a customer's id (the stream's owner)
CODE = "code"  # one of a fixed list of codes (a GraphQL enum)
ITEMS = "items"  # order lines [{sku, quantity, unitPrice}]
SHIPPED_ITEMS = "shipped_items"  # [{sku, quantity}], each at most what the order holds
KINDS = (TEXT, MONEY, QUANTITY, CURRENCY, CUSTOMER, CODE, ITEMS, SHIPPED_ITEMS)

NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class Data:
    """One key of an event's data (the payload key and the GraphQL field are named alike)."""

    key: str
    kind: str
    description: str = ""
    required: bool = True
    # SQL over `s` the database fills in when a writer leaves the key out
    default_sql: str | None = None
    # the value a GraphQL input takes when the client leaves it out
    input_default: Any = NO_DEFAULT
    promoted: str | None = None  # the `order_events` column that also holds it
    unique: bool = False  # a natural key: unique across the log (promoted), retries deduplicate
    codes: tuple[str, ...] = ()  # kind CODE: the allowed codes
    enum: str = ""  # kind CODE: the GraphQL enum's name

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"data {self.key}: unknown kind {self.kind!r}")
        if self.unique and not self.promoted:
            raise ValueError(f"data {self.key}: a unique key must be promoted to a column")
        if self.kind == CODE and not (self.codes and self.enum):
            raise ValueError(f"data {self.key}: a code needs its codes and an enum name")

    @property
    def optional(self) -> bool:
        return not self.required or self.default_sql is not None


def text(key: str, description: str = "", **options: Any) -> Data:
    return Data(key, TEXT, description, **options)


def money(key: str, description: str = "", **options: Any) -> Data:
    return Data(key, MONEY, description, **options)


def quantity(key: str, description: str = "", **options: Any) -> Data:
    return Data(key, QUANTITY, description, **options)


def code(key: str, enum: str, codes: tuple[str, ...], description: str = "",
         **options: Any) -> Data:
    return Data(key, CODE, description, codes=codes, enum=enum, **options)


@dataclass(frozen=True)
class Rule:
    """A condition the event must meet, else BAD_USER_INPUT on `field` with `message` (an SQL
    text expression, e.g. `format('amount %s is too much', d.amount)`)."""

    holds: str
    field: str
    message: str


@dataclass(frozen=True)
class Grant:
    """Who may append an event type: a role (and a service's scope), on its own customer's
    orders only, or only while the order has one status."""

    role: str
    scope: str = ""
    own_orders: bool = False
    from_status: str | None = None


@dataclass(frozen=True)
class Status:
    name: str
    is_final: bool = False
    description: str = ""


@dataclass(frozen=True)
class EventDeclaration:
    """Everything an event type is: its data, where the state machine allows it, how it
    changes the read model, who may append it, and its versions."""

    name: str  # as stored in the log; also its GraphQL object type
    mutation: str  # the GraphQL mutation that appends it
    description: str
    data: tuple[Data, ...]
    from_statuses: tuple[str, ...] | None  # None: it starts a new stream
    to_status: str | None = None  # None: the status stays as it is
    allowed_while: str | None = None  # SQL over `s`: a further condition of the state machine
    rules: tuple[Rule, ...] = ()
    evolve: Mapping[str, str] = field(default_factory=dict)  # read-model column → SQL
    grants: tuple[Grant, ...] = ()  # admin may append every type besides these
    version: int = 1  # the current schema_version of its data
    # upcasts[i] is SQL over `p` (a payload of version i + 1) giving version i + 2
    upcasts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "evolve", MappingProxyType(dict(self.evolve)))
        if len(self.upcasts) != self.version - 1:
            raise ValueError(f"{self.name}: version {self.version} needs {self.version - 1} upcasts")

    @property
    def starts_stream(self) -> bool:
        return self.from_statuses is None

    @property
    def constant(self) -> str:
        """The GraphQL enum value: OrderPlaced → ORDER_PLACED."""
        return re.sub(r"(?<!^)([A-Z])", r"_\1", self.name).upper()

    def datum(self, key: str) -> Data:
        for d in self.data:
            if d.key == key:
                return d
        raise KeyError(f"{self.name} has no data {key!r}")

    def transitions(self) -> list[tuple[str | None, str]]:
        """(from, to) pairs of the state machine; from None: a new stream."""
        if self.from_statuses is None:
            if self.to_status is None:
                raise ValueError(f"{self.name} starts a stream, so it must name its status")
            return [(None, self.to_status)]
        return [(s, self.to_status or s) for s in self.from_statuses]


@dataclass(frozen=True)
class ReadModelField:
    """One column of `orders_current`, and the `Order`/`OrderState` field that shows it."""

    column: str
    sql_type: str  # as in CREATE TABLE (constraints included)
    graphql: str | None = None  # the field on Order; None: not shown
    kind: str = TEXT  # how it is shown: text, money, items, status, id, time, version
    description: str = ""
    in_state: bool = False  # also on OrderState (stateAt)
    initial: str | None = None  # SQL value a new stream starts with
    derived: str | None = None  # SQL over `n` (the state after the event), kept after every event


@dataclass(frozen=True)
class Catalogue:
    """The whole domain: statuses, the read model and every event type."""

    statuses: tuple[Status, ...]
    read_model: tuple[ReadModelField, ...]
    events: tuple[EventDeclaration, ...]

    def __post_init__(self) -> None:
        names = {s.name for s in self.statuses}
        columns = {f.column for f in self.read_model}
        for event in self.events:
            for source, target in event.transitions():
                for status in (source, target):
                    if status is not None and status not in names:
                        raise ValueError(f"{event.name}: unknown status {status}")
            for column in event.evolve:
                if column not in columns:
                    raise ValueError(f"{event.name} evolves {column}, not a read-model column")
            for grant in event.grants:
                if grant.from_status is not None and grant.from_status not in names:
                    raise ValueError(f"{event.name}: grant from unknown status {grant.from_status}")
        if len({e.name for e in self.events}) != len(self.events):
            raise ValueError("two event types share a name")
        if len({e.mutation for e in self.events}) != len(self.events):
            raise ValueError("two event types share a mutation")

    def event(self, name: str) -> EventDeclaration:
        for event in self.events:
            if event.name == name:
                return event
        raise KeyError(name)

    def with_event(self, event: EventDeclaration) -> Catalogue:
        """This catalogue and one more event type (as a team adds its own)."""
        return Catalogue(self.statuses, self.read_model, (*self.events, event))

    def transitions(self) -> list[tuple[str, str | None, str]]:
        """The state machine: (event type, from status or None for a new stream, to status)."""
        return [(e.name, source, target) for e in self.events for source, target in e.transitions()]

    def table(self) -> str:
        """The event types as a Markdown table (README's, printed by `ordergraph schema
        --events`)."""
        rows = ["| event | mutation | allowed from | status after | data | appended by (and admin) |",
                "|---|---|---|---|---|---|"]
        for e in self.events:
            source = "(new stream)" if e.starts_stream else ", ".join(e.from_statuses or ())
            if e.allowed_while:
                source += f" while `{e.allowed_while}`"
            data = ", ".join(f"`{d.key}`" + ("" if d.required and d.default_sql is None else "?")
                             for d in e.data)
            grants = "; ".join(
                g.role + (f" ({g.scope})" if g.scope else "") + (", own orders" if g.own_orders else "")
                + (f", while {g.from_status}" if g.from_status else "") for g in e.grants) or "—"
            rows.append(f"| {e.name} | `{e.mutation}` | {source} | {e.to_status or '(unchanged)'} "
                        f"| {data} | {grants} |")
        return "\n".join(rows) + "\n"
