"""Customers in the database: registered sealed, read opened, forgotten by destroying the key.

The cipher is gql/store/personal.py's; this module moves its values in and out. Every row it
returns has the plaintext shape readers know (`customer_id`, `name`, `email`,
`registered_at`, `forgotten_at`): a forgotten customer's fields read as personal.ERASED.
"""

from __future__ import annotations

import functools
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from gql.errors import IdempotencyConflict
from gql.store import personal
from gql.store.errors import domain_error

Db = asyncpg.Pool | asyncpg.Connection
Claims = tuple[str, str, uuid.UUID | None, str]  # Identity.claims()

SECRET = "select value from og_secrets where name = 'email_index'"
REGISTER = """
select customer_id, name, email, registered_at, forgotten_at, key, existed
from og_register_customer(p_customer_id => $1, p_name => $2, p_email => $3, p_email_index => $4,
                          p_key => $5, p_role => $6, p_scope => $7, p_customer => $8,
                          p_subject => $9)
"""
# A customer with its key (none once forgotten): what opening its fields needs.
SEALED = """c.customer_id, c.name, c.email, c.registered_at, c.forgotten_at,
    (select k.key from customer_keys k where k.customer_id = c.customer_id) as key"""
LOAD = f"""
select {SEALED} from customers c
where c.customer_id = any($1::uuid[]) and og_sees($2::uuid, c.customer_id)
"""
FORGET = """
select og_forget_customer(p_customer_id => $1, p_role => $2, p_scope => $3, p_customer => $4,
                          p_subject => $5)
"""
# migrate's sealing of a database whose customers are plaintext (between steps 0008 and 0009)
PLAIN = "select customer_id, name, email from customers where sealed_name is null"
STORE_KEY = "insert into customer_keys (customer_id, key) values ($1, $2)"
STORE_SEALED = """update customers set sealed_name = $2, sealed_email = $3, email_index = $4
where customer_id = $1"""


def opened(row: Mapping[str, Any]) -> dict[str, Any]:
    """A sealed row (with its `key`) as readers see it: plaintext, or ERASED without a key."""
    key, customer_id = row["key"], row["customer_id"]
    fields = {f: personal.ERASED if key is None else personal.unseal(key, customer_id, f, row[f])
              for f in (personal.NAME, personal.EMAIL)}
    return {"customer_id": customer_id, **fields, "registered_at": row["registered_at"],
            "forgotten_at": row["forgotten_at"]}


def sealed(key: bytes, customer_id: uuid.UUID, name: str, email: str,
           secret: bytes) -> tuple[bytes, bytes, bytes]:
    """The name, e-mail and e-mail index as the table holds them."""
    return (personal.seal(key, customer_id, personal.NAME, name),
            personal.seal(key, customer_id, personal.EMAIL, email),
            personal.email_index(secret, email))


# The compiled path (gql/schema/plans.py) renders a sealed field as this one-key object, with
# the ciphertext and the customer's key (null once forgotten); open_document opens it after
# the statement, before the answer leaves the server. The key is random per process and
# never leaves it, so no stored value (a payload may hold keys of any name) can pass for it.
SEALED_MARK = f"og:sealed:{secrets.token_hex(8)}"
_MARK_BYTES = b'"' + SEALED_MARK.encode() + b'"'


def sealed_sql(alias: str, field: str) -> str:
    """The compiled rendering of a customer's sealed `field` of row `alias`."""
    return (f"json_build_object('{SEALED_MARK}', json_build_array({alias}.customer_id, "
            f"'{field}', encode({alias}.{field}, 'hex'), (select encode(k.key, 'hex') "
            f"from customer_keys k where k.customer_id = {alias}.customer_id)))")


# The mark as PostgreSQL's json renders it (ciphertext and key in hex). Outside a string of
# the answer only the statement writes `{"`: inside one a quote is escaped.
_MARK = re.compile(
    rb'\{\s*"' + re.escape(SEALED_MARK.encode()) + rb'"\s*:\s*\[\s*"([0-9a-f-]{36})"\s*,\s*'
    rb'"(name|email)"\s*,\s*"([0-9a-f]*)"\s*,\s*(?:"([0-9a-f]*)"|null)\s*\]\s*\}')
_ERASED_JSON = orjson.dumps(personal.ERASED)


@functools.lru_cache(maxsize=16_384)
def _opened(customer_id: bytes, field: bytes, ciphertext: bytes, key: bytes) -> bytes:
    """A sealed field's plaintext as JSON. Remembered by ciphertext and key (pages repeat the
    same customers): a forgotten customer's answers carry no key, so nothing remembered is
    shown for it again."""
    return orjson.dumps(personal.unseal(bytes.fromhex(key.decode()), customer_id.decode(),
                                        field.decode(), bytes.fromhex(ciphertext.decode())))


def _plaintext(match: re.Match[bytes]) -> bytes:
    customer_id, field, ciphertext, key = match.groups()
    return _ERASED_JSON if key is None else _opened(customer_id, field, ciphertext, key)


def open_document(data: bytes) -> bytes:
    """A compiled answer with its sealed fields opened; one without any is returned as it is,
    after a scan for the mark."""
    return _MARK.sub(_plaintext, data) if _MARK_BYTES in data else data


def open_text(data: str) -> str:
    """As open_document, for an answer held as text."""
    return data if SEALED_MARK not in data else open_document(data.encode()).decode()


@dataclass(frozen=True)
class Registered:
    customer: dict[str, Any]
    existed: bool


async def register_customer(db: Db, customer_id: uuid.UUID, name: str, email: str,
                            claims: Claims) -> Registered:
    """Create a customer; registering the same one again returns it unchanged. The
    database refuses it unless the grants let `claims` register customers."""
    personal.check(name, email)
    key = personal.new_key()
    try:
        secret = await db.fetchval(SECRET)
        row = await db.fetchrow(REGISTER, customer_id,
                                *sealed(key, customer_id, name, email, secret), key, *claims)
    except asyncpg.PostgresError as exc:
        raise domain_error(exc) or exc from None
    assert row is not None
    customer = opened(row)
    if row["existed"] and (row["key"] is None or (customer["name"], customer["email"]) != (name, email)):
        raise IdempotencyConflict(
            f"customer {customer_id} is already registered with other details",
            field="customerId",
        )
    return Registered(customer=customer, existed=row["existed"])


async def load_customers(db: Db, ids: Sequence[uuid.UUID],
                         viewer: uuid.UUID | None) -> list[dict[str, Any] | None]:
    rows = await db.fetch(LOAD, list(ids), viewer)
    by_id = {row["customer_id"]: opened(row) for row in rows}
    return [by_id.get(i) for i in ids]


async def forget_customer(db: Db, customer_id: uuid.UUID, claims: Claims) -> datetime:
    """Destroy the customer's key (admin only, as the database checks); when it was forgotten."""
    try:
        return await db.fetchval(FORGET, customer_id, *claims)
    except asyncpg.PostgresError as exc:
        raise domain_error(exc) or exc from None


async def seal_plain(conn: asyncpg.Connection) -> None:
    """Seal every plaintext customer with a new key of its own (migrate, after step 0008)."""
    secret = await conn.fetchval(SECRET)
    for row in await conn.fetch(PLAIN):
        key = personal.new_key()
        await conn.execute(STORE_KEY, row["customer_id"], key)
        await conn.execute(STORE_SEALED, row["customer_id"],
                           *sealed(key, row["customer_id"], row["name"], row["email"], secret))
