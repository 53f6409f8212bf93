// A small Relay app's documents, as a front-end would write them against ordergraph: a
// paginated board with counts, a refetchable order card (refetched through `node`), a
// timeline fragment on the event interface, the dashboard's statistics and a subscription.
import { graphql } from "relay-runtime";

export const orderCard = graphql`
  fragment BoardOrderCard_order on Order @refetchable(queryName: "BoardOrderCardRefetchQuery") {
    nodeId
    id
    status
    currency
    totalAmount
    refundedAmount
    customer {
      nodeId
      name
    }
  }
`;

export const column = graphql`
  fragment BoardColumn_query on Query
  @refetchable(queryName: "BoardColumnPaginationQuery")
  @argumentDefinitions(
    count: { type: "Int", defaultValue: 20 }
    cursor: { type: "String" }
    status: { type: "[OrderStatus!]" }
  ) {
    orders(first: $count, after: $cursor, status: $status) @connection(key: "BoardColumn_orders") {
      totalCount
      edges {
        node {
          ...BoardOrderCard_order
        }
      }
    }
  }
`;

export const board = graphql`
  query BoardQuery($status: [OrderStatus!]) {
    logPosition
    ...BoardColumn_query @arguments(status: $status)
    orderStatistics(status: $status) {
      count
      byStatus {
        status
        count
      }
      byCurrency {
        currency
        count
        totalAmount
        capturedAmount
        refundedAmount
      }
    }
  }
`;

export const timeline = graphql`
  fragment BoardTimeline_order on Order {
    events(first: 50) {
      totalCount
      edges {
        node {
          nodeId
          type
          occurredAt
          ... on RefundIssued {
            amount
            reason
          }
          ... on OrderShipped {
            carrier
            trackingNumber
          }
        }
      }
    }
  }
`;

export const refetchEvent = graphql`
  query BoardEventQuery($nodeId: ID!) {
    node(nodeId: $nodeId) {
      nodeId
      ... on OrderEvent {
        type
        order {
          ...BoardOrderCard_order
          ...BoardTimeline_order
        }
      }
    }
  }
`;

export const moves = graphql`
  subscription BoardMovesSubscription($after: String) {
    orderStatusChanged(after: $after) {
      previousStatus
      status
      event {
        globalPosition
      }
      order {
        ...BoardOrderCard_order
      }
    }
  }
`;
