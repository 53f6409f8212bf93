"""`python -m gql` is the `ordergraph` command line."""

from gql.cli import main

main()
