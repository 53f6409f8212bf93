"""Who is asking: the identity a verified token names, and what the grants let it do.

The grants themselves are data in schema.sql (`access_roles`, `append_grants`), where the
database enforces them on every append; this module reads the same rows so that the GraphQL
layer can answer FORBIDDEN before it asks the database, and scope reads to a customer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from gql.errors import Forbidden
from gql.events import Actor, EventType

CUSTOMER, SERVICE, STAFF, ADMIN = "customer", "service", "staff", "admin"
ROLES = (CUSTOMER, SERVICE, STAFF, ADMIN)  # the values of a token's `role` claim
SCOPES = ("payments", "fulfilment")  # the values of a service token's `scope` claim


@dataclass(frozen=True)
class Identity:
    """A caller: its role, its service scope, its customer (role customer) and subject."""

    role: str
    subject: str
    scope: str = ""
    customer_id: uuid.UUID | None = None
    expires_at: float | None = None  # seconds since the epoch; None: never (open mode)

    @property
    def actor(self) -> Actor:
        """The actor recorded on the events this caller appends."""
        return Actor(self.role, self.subject)

    def claims(self) -> tuple[str, str, uuid.UUID | None, str]:
        """og_append's (and og_claim's) last four arguments."""
        return self.role, self.scope, self.customer_id, self.subject


OPEN = Identity(ADMIN, "open")  # every caller when no keys are configured (loopback only)
SYSTEM = Identity(ADMIN, "ordergraph")  # the command line's own appends (seed, import)


@dataclass(frozen=True)
class Role:
    reads_all: bool
    registers_customers: bool
    acts_for_others: bool


@dataclass(frozen=True)
class Grants:
    """`access_roles` and `append_grants` as the database holds them."""

    roles: dict[str, Role]
    appends: frozenset[tuple[str, str, str]]  # (role, scope, event type as stored)

    def viewer(self, identity: Identity) -> uuid.UUID | None:
        """The customer whose rows alone this caller may read; None: it reads all."""
        role = self.roles.get(identity.role)
        if role is not None and role.reads_all:
            return None
        # a role the data does not know reads nothing: no customer has a nil id
        return identity.customer_id or uuid.UUID(int=0)

    def may_append(self, identity: Identity, event_type: EventType) -> bool:
        return (identity.role, identity.scope, event_type.value) in self.appends

    def check_append(self, identity: Identity, event_type: EventType) -> None:
        if not self.may_append(identity, event_type):
            scope = f" ({identity.scope})" if identity.scope else ""
            raise Forbidden(f"role {identity.role}{scope} may not append {event_type.value}",
                            role=identity.role, eventType=event_type.name)

    def check_register(self, identity: Identity) -> None:
        role = self.roles.get(identity.role)
        if role is None or not role.registers_customers:
            raise Forbidden(f"role {identity.role} may not register customers", role=identity.role)

    def actor(self, identity: Identity, supplied: Actor | None) -> Actor:
        """The actor of an append: the token's, or one the role may name for another."""
        if supplied is None or supplied == identity.actor:
            return identity.actor
        role = self.roles.get(identity.role)
        if role is None or not role.acts_for_others:
            raise Forbidden(f"role {identity.role} may not name another actor; the actor is "
                            "taken from the token", field="actor")
        return supplied
