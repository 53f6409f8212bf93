"""Trusted documents: the GraphQL documents an app ships, each known by the sha256 of its text.

A directory of `.graphql` files (searched recursively) is read and checked once, at start:
each must parse, validate against the schema with the server's own limits (depth, aliases,
tokens, introspection) and, with its variables' defaults, cost no more than the ceiling. A
client then sends a document's id (`documentId`, or Apollo's
`extensions.persistedQuery.sha256Hash`) instead of its text; in trusted-only mode any other
document is refused, except from the roles allowed to send their own (GraphiQL's admin).
`ordergraph documents check DIR` runs the same check on a front-end's repository.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLError,
    OperationDefinitionNode,
    TypeSystemDefinitionNode,
    TypeSystemExtensionNode,
    parse,
    specified_rules,
    validate,
)

from gql.errors import (
    BadRequest,
    ConfigurationError,
    DocumentNotTrusted,
    PersistedQueryNotFound,
    QueryTooComplex,
)
from gql.identity import ROLES, Identity

SUFFIX = ".graphql"
_SKIPPED = frozenset({"node_modules"})  # a front-end repository's packages (and hidden dirs)


def document_id(text: str) -> str:
    """A document's id: the hex sha256 of its text as UTF-8 (what `sha256sum FILE` prints)."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Document:
    """One trusted document; `costs` is each operation's estimated cost with its variables'
    defaults (the key None: the document's only operation, sent without operationName)."""

    id: str
    path: Path
    text: str
    costs: Mapping[str | None, int]


@dataclass(frozen=True)
class Problem:
    """Why a document cannot be trusted: one line, `path:line:column: message`."""

    path: Path
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f":{self.line}:{self.column}" if self.line is not None else ""
        return f"{self.path}{where}: {self.message}"


def check_directory(schema: Any, directory: Path) -> tuple[list[Document], list[Problem]]:
    """Every document under `directory` checked against `schema` (gql.schema.build_schema's):
    the documents that pass, and one Problem per failure."""
    if not directory.is_dir():
        return [], [Problem(directory, "not a directory")]
    documents: list[Document] = []
    problems: list[Problem] = []
    for path in sorted(directory.rglob(f"*{SUFFIX}")):
        if any(part in _SKIPPED or part.startswith(".") for part in path.relative_to(directory).parts):
            continue
        found = check_document(schema, path)
        if isinstance(found, Document):
            documents.append(found)
        elif found:
            problems.extend(found)
    if not documents and not problems:
        problems.append(Problem(directory, f"no {SUFFIX} documents in it"))
    return documents, problems


def check_document(schema: Any, path: Path) -> Document | list[Problem]:
    """The document in `path`, or what is wrong with it (nothing: a schema file, which holds
    type definitions only, is no document)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(path, f"cannot read it ({exc})")]
    limits = schema.limits
    try:
        document = parse(text, max_tokens=limits.max_tokens)
    except GraphQLError as exc:
        return [_problem(path, exc)]
    if document.definitions and all(isinstance(d, TypeSystemDefinitionNode | TypeSystemExtensionNode)
                                    for d in document.definitions):
        return []
    errors = validate(schema._schema, document, [*specified_rules, *limits.rules])
    if errors:
        return [_problem(path, error) for error in errors]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if not operations:
        return [Problem(path, "the document has no operation")]
    costs: dict[str | None, int] = {}
    problems = []
    for operation in operations:
        try:
            cost = limits.cost.check(document, operation, {})
        except QueryTooComplex as exc:
            line, column = _location(operation)
            problems.append(Problem(path, exc.message, line, column))
            continue
        if operation.name is not None:
            costs[operation.name.value] = cost
        if len(operations) == 1:
            costs[None] = cost
    if problems:
        return problems
    return Document(document_id(text), path, text, costs)


def _problem(path: Path, error: GraphQLError) -> Problem:
    location = (error.locations or [None])[0]
    message = error.message.replace("\n", " ")
    if location is None:
        return Problem(path, message)
    return Problem(path, message, location.line, location.column)


def _location(node: Any) -> tuple[int | None, int | None]:
    if node.loc is None:
        return None, None
    location = node.loc.source.get_location(node.loc.start)
    return location.line, location.column


class TrustedDocuments:
    """The documents a server knows by id, and whether it runs any other."""

    def __init__(self, documents: Iterable[Document] = (), *, only: bool = False,
                 allowed_roles: Iterable[str] = ()) -> None:
        self.by_id = {document.id: document for document in documents}
        self._texts = frozenset(document.text for document in self.by_id.values())
        self.only = only
        self.allowed_roles = frozenset(allowed_roles)

    def resolve(self, params: Mapping[str, Any]) -> str | None:
        """The text of the document a request names by id (None: it names none); an id no
        document has is PERSISTED_QUERY_NOT_FOUND, unless the request also sends the text."""
        wanted = params.get("documentId")
        if wanted is None:
            extensions = params.get("extensions")
            persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
            wanted = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if wanted is None:
            return None
        if not isinstance(wanted, str):
            raise BadRequest("a document id must be the hex sha256 of the document's text")
        text = params.get("query")
        found = self.by_id.get(wanted.lower())
        if found is None:
            if isinstance(text, str) and text.strip():  # the text is there: it is judged alone
                return None
            raise PersistedQueryNotFound(f"no trusted document has the id {wanted[:80]!r}",
                                         documentId=wanted[:80])
        if text is not None and text != found.text:
            raise BadRequest("the query sent is not the text of the document its id names")
        return found.text

    def admit(self, query: str, identity: Identity) -> None:
        """DOCUMENT_NOT_TRUSTED in trusted-only mode for a text no trusted document has,
        unless the caller's role may send its own documents."""
        if self.only and query not in self._texts and identity.role not in self.allowed_roles:
            raise DocumentNotTrusted("this server runs trusted documents only: send the id of "
                                     "one of them (documentId)")


def load_trusted(settings: Any, schema: Any) -> TrustedDocuments:
    """The server's trusted documents from its settings; a directory with any problem stops
    the start with one line naming the first problem."""
    roles = [r.strip() for r in settings.trusted_documents_roles.split(",") if r.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ConfigurationError(f"ORDERGRAPH_TRUSTED_DOCUMENTS_ROLES: {', '.join(unknown)} is not "
                                 f"a role (roles: {', '.join(ROLES)})")
    if not settings.documents:
        if settings.trusted_documents_only:
            raise ConfigurationError("ORDERGRAPH_TRUSTED_DOCUMENTS_ONLY needs ORDERGRAPH_DOCUMENTS, "
                                     "the directory of the trusted documents")
        return TrustedDocuments(allowed_roles=roles)
    directory = Path(settings.documents)
    documents, problems = check_directory(schema, directory)
    if problems:
        more = f" (and {len(problems) - 1} more; see `ordergraph documents check {directory}`)" \
            if len(problems) > 1 else ""
        raise ConfigurationError(f"ORDERGRAPH_DOCUMENTS: {problems[0]}{more}")
    return TrustedDocuments(documents, only=settings.trusted_documents_only, allowed_roles=roles)
