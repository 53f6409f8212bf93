"""Relay's global object identification: `Node { nodeId }` and the ids it is known by.

A `nodeId` names a type and a UUID, opaque to clients (`Order`, `Customer`, or an event's own
type). schema.sql's og_cursor renders the same text, so both executors agree.
"""

from __future__ import annotations

import base64
import binascii
import uuid

import strawberry

from gql.errors import BadUserInput
from gql.schema.pagination import encode_cursor


@strawberry.interface(description="An object with an id that is unique across every type: "
                      "refetch it with `node(nodeId:)`.")
class Node:
    node_id: strawberry.ID = strawberry.field(
        description="The object's global id (its `id` stays the UUID).")


def node_id(type_name: str, id: uuid.UUID) -> strawberry.ID:
    return strawberry.ID(encode_cursor(type_name, id))


def decode_node_id(text: str) -> tuple[str, uuid.UUID]:
    """The type and id a nodeId names; BAD_USER_INPUT when it is not a nodeId."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        type_name, id = raw.split("|")
        return type_name, uuid.UUID(id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput("nodeId is not an id this API gave out", field="nodeId") from None
