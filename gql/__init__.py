"""ordergraph: a GraphQL API over PostgreSQL event streams for orders."""

__version__ = "0.1.0"
