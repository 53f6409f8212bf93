"""The order domain, declared once: its statuses, the read model and every event type.

Adding an event type or a read-model field is an entry here (README, "Adding an event type").
The database's checks, fold and grants (generated at `ordergraph migrate`), the GraphQL
objects, inputs and mutations, and the tests' state machine all follow from these entries.
"""

from __future__ import annotations

from gql.declaration import (
    CURRENCY,
    CUSTOMER,
    ITEMS,
    MONEY,
    SHIPPED_ITEMS,
    Catalogue,
    Data,
    EventDeclaration,
    Grant,
    ReadModelField,
    Rule,
    Status,
    code,
    money,
    quantity,
    text,
)

STATUSES = (
    Status("PLACED", description="Placed; items may still change."),
    Status("PAYMENT_AUTHORIZED", description="The payment for the total is authorized."),
    Status("PAID", description="The authorized payment is captured."),
    Status("SHIPPED", is_final=True, description="Shipped to the customer."),
    Status("CANCELLED", is_final=True, description="Cancelled."),
)

# The read model, `orders_current`: one row per order. Columns without a GraphQL name are the
# log's bookkeeping; `version`, `status` and the `last_…` columns are kept by the fold itself.
READ_MODEL = (
    ReadModelField("order_id", "uuid primary key", "id", "id"),
    ReadModelField("customer_id",
                   "uuid not null constraint orders_current_customer_fkey references customers"),
    ReadModelField("status", "text references order_statuses", "status", "status", in_state=True),
    ReadModelField("currency", "text not null", "currency",
                   description="The ISO 4217 code every amount of the order is in."),
    ReadModelField("total_amount", "numeric not null default 0", "totalAmount", MONEY,
                   "The sum of the items' line totals.", in_state=True, initial="0",
                   derived="og_items_total(n.items)"),
    ReadModelField("authorized_amount", "numeric not null default 0", "authorizedAmount", MONEY,
                   in_state=True, initial="0"),
    ReadModelField("captured_amount", "numeric not null default 0", "capturedAmount", MONEY,
                   "Captured, less what a reversal gave back.", in_state=True, initial="0"),
    ReadModelField("refunded_amount", "numeric not null default 0", "refundedAmount", MONEY,
                   "Refunded so far, out of what was captured.", in_state=True, initial="0"),
    ReadModelField("items", "jsonb not null default '[]'", "items", ITEMS,
                   "One line per sku.", in_state=True, initial="'[]'"),
    ReadModelField("version", "bigint not null", "version", "version", in_state=True),
    ReadModelField("placed_at", "timestamptz not null", "placedAt", "time",
                   "Business time of OrderPlaced."),
    ReadModelField("last_event_at", "timestamptz not null", "lastEventAt", "time",
                   "The latest business time of the stream's events."),
    ReadModelField("last_recorded_at", "timestamptz not null"),
    ReadModelField("last_log_xid", "xid8 not null"),
    ReadModelField("last_position", "bigint not null"),
)

# Who appends what, besides admin (which may append every type).
CUSTOMER_OWN = Grant("customer", own_orders=True)
PAYMENTS = Grant("service", "payments")
FULFILMENT = Grant("service", "fulfilment")
STAFF = Grant("staff")

_ITEM_PRICE = Rule(
    "og_items_price(s.items, d.sku) is null or og_items_price(s.items, d.sku) = d.unitPrice",
    "unitPrice",
    "format('sku %s is already on the order at unitPrice %s', d.sku, og_items_price(s.items, d.sku))")
_HELD = Rule("d.quantity <= og_items_held(s.items, d.sku)", "quantity",
             "format('the order holds %s of sku %s', og_items_held(s.items, d.sku), d.sku)")

# CustomerForgotten states a fact only the key's absence makes true (schema.sql, og_forgettable)
FORGOTTEN = "og_forgettable(s.customer_id, s.order_id)"

EVENTS = (
    EventDeclaration(
        "OrderPlaced", "placeOrder", "Starts a new order stream.",
        data=(Data("customerId", CUSTOMER, "The customer who orders."),
              Data("currency", CURRENCY, "An ISO 4217 code, e.g. EUR.", promoted="currency"),
              Data("items", ITEMS, "The first items (may be empty).", input_default=[])),
        from_statuses=None, to_status="PLACED",
        evolve={"customer_id": "e.customer_id", "currency": "d.currency",
                "placed_at": "e.occurred_at", "items": "og_items_merge(d.items)"},
        grants=(CUSTOMER_OWN,),
    ),
    EventDeclaration(
        "ItemAddedToOrder", "addItemToOrder", "Adds a quantity of a sku at a unit price.",
        data=(text("sku"), quantity("quantity"), money("unitPrice")),
        from_statuses=("PLACED",),
        rules=(_ITEM_PRICE,),
        evolve={"items": "og_items_add(p_items => s.items, p_sku => d.sku, "
                         "p_quantity => d.quantity, p_unit_price => d.unitPrice)"},
        grants=(CUSTOMER_OWN,),
    ),
    EventDeclaration(
        "ItemRemovedFromOrder", "removeItemFromOrder",
        "Removes a quantity of a sku, at most what the order holds.",
        data=(text("sku"), quantity("quantity")),
        from_statuses=("PLACED",),
        rules=(_HELD,),
        evolve={"items": "og_items_remove(p_items => s.items, p_sku => d.sku, "
                         "p_quantity => d.quantity)"},
        grants=(CUSTOMER_OWN,),
    ),
    EventDeclaration(
        "PaymentAuthorized", "authorizePayment", "Authorizes a payment of the order total.",
        data=(money("amount", promoted="amount"), text("paymentProvider"),
              text("authorizationId", "The provider's id of the authorization; unique.",
                   promoted="authorization_id", unique=True)),
        from_statuses=("PLACED",), to_status="PAYMENT_AUTHORIZED",
        rules=(Rule("s.total_amount > 0", "amount",
                    "'the order total is 0: there is nothing to authorize'"),
               Rule("d.amount = s.total_amount", "amount",
                    "format('amount %s must equal the order total %s', d.amount, s.total_amount)")),
        evolve={"authorized_amount": "d.amount"},
        grants=(PAYMENTS,),
    ),
    EventDeclaration(
        "PaymentCaptured", "capturePayment", "Captures the authorized amount.",
        data=(money("amount", promoted="amount"),),
        from_statuses=("PAYMENT_AUTHORIZED",), to_status="PAID",
        rules=(Rule("d.amount = s.authorized_amount", "amount",
                    "format('amount %s must equal the authorized amount %s', d.amount, "
                    "s.authorized_amount)"),),
        evolve={"captured_amount": "s.captured_amount + d.amount"},
        grants=(PAYMENTS,),
    ),
    EventDeclaration(
        "PaymentCaptureReversed", "reversePaymentCapture",
        "Reverses a capture (a chargeback): the compensating event.",
        data=(money("amount", promoted="amount"), text("reason")),
        from_statuses=("PAID",), to_status="PAYMENT_AUTHORIZED",
        rules=(Rule("d.amount = s.captured_amount - s.refunded_amount", "amount",
                    "format('amount %s must equal the captured amount not yet refunded, %s', "
                    "d.amount, s.captured_amount - s.refunded_amount)"),),
        evolve={"captured_amount": "s.captured_amount - d.amount"},
        grants=(PAYMENTS,),
    ),
    EventDeclaration(
        "OrderShipped", "shipOrder", "The order left the warehouse.",
        data=(text("carrier"), text("trackingNumber"),
              Data("shippedItems", SHIPPED_ITEMS, "Default: every item of the order.",
                   default_sql="og_items_shipped(s.items)")),
        from_statuses=("PAID",), to_status="SHIPPED",
        grants=(FULFILMENT,),
    ),
    EventDeclaration(
        "OrderCancelled", "cancelOrder", "Cancels the order.",
        data=(text("reason"),
              code("reasonCode", "CancellationReason",
                   ("CUSTOMER_REQUEST", "PAYMENT_FAILED", "OUT_OF_STOCK", "OTHER"),
                   "The reason as a code (default OTHER).", input_default="OTHER")),
        from_statuses=("PLACED", "PAYMENT_AUTHORIZED", "PAID"), to_status="CANCELLED",
        grants=(Grant("customer", own_orders=True, from_status="PLACED"), STAFF),
        # 2: `reasonCode` became required; version 1 events get the code their free-text
        # reason names, else OTHER (a code already there is kept)
        version=2,
        upcasts=("jsonb_build_object('reasonCode', case"
                 " when p ->> 'reason' ilike '%stock%' then 'OUT_OF_STOCK'"
                 " when p ->> 'reason' ilike '%payment%' then 'PAYMENT_FAILED'"
                 " when p ->> 'reason' ilike '%customer%' then 'CUSTOMER_REQUEST'"
                 " else 'OTHER' end) || p",),
    ),
    EventDeclaration(
        "RefundIssued", "issueRefund",
        "Gives back part or all of what was captured and not yet refunded; the status stays.",
        data=(money("amount", "More than 0, at most what was captured and not yet refunded.",
                    promoted="amount"),
              text("reason")),
        from_statuses=("PAID", "SHIPPED", "CANCELLED"),
        allowed_while="s.captured_amount > s.refunded_amount",
        rules=(Rule("d.amount > 0", "amount", "'amount must be more than 0'"),
               Rule("d.amount <= s.captured_amount - s.refunded_amount", "amount",
                    "format('amount %s is more than the %s captured and not yet refunded', "
                    "d.amount, s.captured_amount - s.refunded_amount)")),
        evolve={"refunded_amount": "s.refunded_amount + d.amount"},
        grants=(PAYMENTS, STAFF),
    ),
    EventDeclaration(
        "CustomerForgotten", "recordCustomerForgotten",
        "The order's customer was forgotten: its name and e-mail are erased for good; the order "
        "is otherwise unchanged. forgetCustomer appends it to each of the customer's orders; it "
        "is allowed only once the customer's key is destroyed, and once per order.",
        data=(),
        from_statuses=tuple(s.name for s in STATUSES),
        allowed_while=FORGOTTEN,
    ),
)

CATALOGUE = Catalogue(STATUSES, READ_MODEL, EVENTS)
