"""Personal data at rest: sealed with a key per customer, so that destroying the key erases it.

A customer's name and e-mail are stored as AES-256-GCM ciphertexts (a fresh 12-byte nonce
before each), the associated data binding each to its customer and field: a ciphertext copied
to another customer's row, or from `name` to `email`, does not open. Destroying the customer's
key (`customer_keys`, gql/store/customers.py) leaves ciphertexts nobody can open.

E-mail uniqueness survives through a blind index: HMAC-SHA256 of the normalised address under
the database's own secret (`og_secrets`). Equal addresses give equal indexes, so the index
tells whoever reads the table which customers share an address (none may) and lets whoever
also holds the secret test a guessed address; forgetting a customer clears its index.

Only this module knows the cipher; it imports neither the database driver nor GraphQL.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gql.errors import BadUserInput

KEY_BYTES = 32
NONCE_BYTES = 12
NAME, EMAIL = "name", "email"  # the sealed fields of a customer (associated data names them)
# What a forgotten customer's personal fields read as: the fields stay non-null strings, so
# clients that show them keep working; `forgottenAt` says why.
ERASED = "(erased)"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def _aad(customer_id: uuid.UUID | str, field: str) -> bytes:
    """The associated data: the customer's id in its canonical text (as PostgreSQL renders it,
    so the compiled path's answers need not parse it) and the field."""
    return f"ordergraph/customer/{customer_id}/{field}".encode()


def seal(key: bytes, customer_id: uuid.UUID, field: str, plain: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plain.encode(), _aad(customer_id, field))


def unseal(key: bytes, customer_id: uuid.UUID | str, field: str, sealed: bytes) -> str:
    """The plaintext; raises InvalidTag when the key, customer or field is not the sealer's."""
    nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    return AESGCM(key).decrypt(nonce, body, _aad(customer_id, field)).decode()


def normalise_email(email: str) -> str:
    """What uniqueness compares (as the former unique index on lower(email) did)."""
    return email.lower()


def email_index(secret: bytes, email: str) -> bytes:
    return hmac.new(secret, normalise_email(email).encode(), hashlib.sha256).digest()


def check(name: str, email: str) -> None:
    """The checks the database made on the plaintext columns, made before sealing."""
    if not name.strip(" ") or len(name) > 200:
        raise BadUserInput("name must be 1 to 200 characters", field="name")
    if not _EMAIL.match(email) or len(email) > 320:
        raise BadUserInput("email must be an address such as ann@example.com", field="email")


__all__ = ["EMAIL", "ERASED", "NAME", "InvalidTag", "check", "email_index", "new_key", "seal",
           "unseal"]
