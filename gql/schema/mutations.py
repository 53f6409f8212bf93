"""Mutation: one per event type, each appending one event through the append path."""

from __future__ import annotations

import uuid

import strawberry

from gql.events import EventType
from gql.schema.context import Info
from gql.schema.inputs import (
    AddItemToOrderInput,
    AuthorizePaymentInput,
    CancelOrderInput,
    CapturePaymentInput,
    EventMetadata,
    PlaceOrderInput,
    RegisterCustomerInput,
    RemoveItemFromOrderInput,
    ReversePaymentCaptureInput,
    ShipOrderInput,
    new_event,
    no_nul,
)
from gql.schema.types import Customer, Order, OrderEvent, event_from_row
from gql.store.append import append_event, register_customer


@strawberry.type(description="What an append recorded, and the order after it.")
class AppendResult:
    event: OrderEvent
    order: Order
    deduplicated: bool = strawberry.field(
        description="True when this eventId (or authorizationId) was already recorded: "
        "nothing new was appended and `event` is the original.")


# The append mutations, by GraphQL field name: the resolvers below and the compiled path
# (gql/schema/appends.py) both take the event type from here.
APPEND_MUTATIONS: dict[str, EventType] = {
    "placeOrder": EventType.ORDER_PLACED,
    "addItemToOrder": EventType.ITEM_ADDED_TO_ORDER,
    "removeItemFromOrder": EventType.ITEM_REMOVED_FROM_ORDER,
    "authorizePayment": EventType.PAYMENT_AUTHORIZED,
    "capturePayment": EventType.PAYMENT_CAPTURED,
    "reversePaymentCapture": EventType.PAYMENT_CAPTURE_REVERSED,
    "shipOrder": EventType.ORDER_SHIPPED,
    "cancelOrder": EventType.ORDER_CANCELLED,
}


async def _append(info: Info, data: EventMetadata) -> AppendResult:
    context = info.context
    event = new_event(APPEND_MUTATIONS[info.field_name], data, context.grants, context.identity)
    appended = await append_event(context.pool, event, context.identity.claims())
    row = appended.event
    info.context.loaders.orders.prime(row["order_id"], appended.order)  # for `event { order }`
    return AppendResult(event=event_from_row(row), order=Order.from_row(appended.order),
                        deduplicated=appended.deduplicated)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a customer; the same details again return it.")
    async def register_customer(self, info: Info, input: RegisterCustomerInput) -> Customer:
        info.context.grants.check_register(info.context.identity)
        no_nul({"name": input.name, "email": input.email})
        registered = await register_customer(
            info.context.pool, input.customer_id or uuid.uuid4(), input.name, input.email,
            info.context.identity.claims())
        return Customer.from_row(registered.customer)

    @strawberry.mutation(description="Records OrderPlaced: starts a new order stream.")
    async def place_order(self, info: Info, input: PlaceOrderInput) -> AppendResult:
        return await _append(info, input)

    @strawberry.mutation(description="Records ItemAddedToOrder.")
    async def add_item_to_order(self, info: Info, input: AddItemToOrderInput) -> AppendResult:
        return await _append(info, input)

    @strawberry.mutation(description="Records ItemRemovedFromOrder.")
    async def remove_item_from_order(
        self, info: Info, input: RemoveItemFromOrderInput
    ) -> AppendResult:
        return await _append(info, input)

    @strawberry.mutation(description="Records PaymentAuthorized for the order total.")
    async def authorize_payment(self, info: Info, input: AuthorizePaymentInput) -> AppendResult:
        return await _append(info, input)

    @strawberry.mutation(description="Records PaymentCaptured for the authorized amount.")
    async def capture_payment(self, info: Info, input: CapturePaymentInput) -> AppendResult:
        return await _append(info, input)

    @strawberry.mutation(
        description="Records PaymentCaptureReversed, compensating a capture."
    )
    async def reverse_payment_capture(
        self, info: Info, input: ReversePaymentCaptureInput
    ) -> AppendResult:
        return await _append(info, input)

    @strawberry.mutation(description="Records OrderShipped.")
    async def ship_order(self, info: Info, input: ShipOrderInput) -> AppendResult:
        return await _append(info, input)

    @strawberry.mutation(description="Records OrderCancelled.")
    async def cancel_order(self, info: Info, input: CancelOrderInput) -> AppendResult:
        return await _append(info, input)
