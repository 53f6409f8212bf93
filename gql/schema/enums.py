"""The domain's enums as GraphQL enums (member names are the GraphQL values)."""

import strawberry

from gql.events import CODES, EventOrder, EventType, OrderStatus, TimeAxis

strawberry.enum(EventType, description="The past-tense facts an order's stream records.")
strawberry.enum(OrderStatus, description="Where an order stands; SHIPPED and CANCELLED are final.")
strawberry.enum(EventOrder, description="How to order an order's timeline.")
strawberry.enum(TimeAxis, description="OCCURRED: business time; RECORDED: when the log saw it.")
for _codes in CODES.values():
    strawberry.enum(_codes)

__all__ = ["CODES", "EventOrder", "EventType", "OrderStatus", "TimeAxis"]
