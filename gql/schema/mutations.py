"""Mutation: one per event type, each appending one event through the append path."""

from __future__ import annotations

import uuid
from typing import Any

import strawberry

from gql.catalogue import CATALOGUE
from gql.declaration import EventDeclaration
from gql.events import EventType
from gql.schema.context import Info
from gql.schema.inputs import INPUTS, EventMetadata, RegisterCustomerInput, new_event, no_nul
from gql.schema.scalars import UUID
from gql.schema.types import Customer, Order, OrderEvent, event_from_row
from gql.store.append import append_event, register_customer
from gql.store.customers import forget_customer, load_customers


@strawberry.type(description="What an append recorded, and the order after it.")
class AppendResult:
    event: OrderEvent
    order: Order
    deduplicated: bool = strawberry.field(
        description="True when this eventId (or a natural key such as authorizationId) was "
        "already recorded: nothing new was appended and `event` is the original.")


# The append mutations, by GraphQL field name: the resolvers below and the compiled path
# (gql/schema/appends.py) both take the event type from here.
APPEND_MUTATIONS: dict[str, EventType] = {e.mutation: EventType(e.name) for e in CATALOGUE.events}


async def _append(info: Info, data: EventMetadata) -> AppendResult:
    context = info.context
    event = new_event(APPEND_MUTATIONS[info.field_name], data, context.grants, context.identity)
    appended = await append_event(context.for_writes(), event, context.identity.claims())
    row = appended.event
    info.context.loaders.orders.prime(row["order_id"], appended.order)  # for `event { order }`
    return AppendResult(event=event_from_row(row), order=Order.from_row(appended.order),
                        deduplicated=appended.deduplicated)


async def _register_customer(self: Mutation, info: Info, input: RegisterCustomerInput) -> Customer:
    info.context.grants.check_register(info.context.identity)
    no_nul({"name": input.name, "email": input.email})
    registered = await register_customer(
        info.context.for_writes(), input.customer_id or uuid.uuid4(), input.name, input.email,
        info.context.identity.claims())
    return Customer.from_row(registered.customer)


async def _forget_customer(self: Mutation, info: Info, customer_id: UUID) -> Customer:
    """The database alone decides who may (admin): a refusal changes nothing."""
    db = info.context.for_writes()
    customer = uuid.UUID(str(customer_id))
    await forget_customer(db, customer, info.context.identity.claims())
    [row] = await load_customers(db, [customer], None)
    assert row is not None
    return Customer.from_row(row)


def _append_mutation(event: EventDeclaration) -> Any:
    """The mutation appending one event type: `name(input: NameInput!): AppendResult!`."""
    async def resolve(self: Mutation, info: Info, input: EventMetadata) -> AppendResult:
        return await _append(info, input)

    resolve.__annotations__.update({"info": Info, "input": INPUTS[event.name],
                                    "return": AppendResult})
    return strawberry.mutation(resolver=resolve, name=event.mutation,
                               description=f"Records {event.name}. {event.description}")


def _mutation_class() -> type:
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "register_customer": strawberry.mutation(
            resolver=_register_customer,
            description="Create a customer; the same details again return it."),
        "forget_customer": strawberry.mutation(
            resolver=_forget_customer,
            description="Admin only: erase a customer's name and e-mail for good, by destroying "
            "the key they are sealed with (see README, \"Forgetting a customer\")."),
        **{e.mutation: _append_mutation(e) for e in CATALOGUE.events},
    }
    return strawberry.type(type("Mutation", (), namespace))


Mutation = _mutation_class()
