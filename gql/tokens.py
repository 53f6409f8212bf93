"""Bearer tokens: JWTs verified with PyJWT against a JWKS, an HS256 secret or the dev key.

Keys are looked up by `kid`; a token naming a kid the key set does not hold makes the
verifier read the JWKS again (a file when it changed, a URL at most every REFETCH seconds),
so a rotated key is accepted without a restart. `exp` is required; `iss` and `aud` are
checked when configured. The algorithm is the key's own: a JWKS key never verifies an HS256
token, so a token "signed" with a public key as HMAC secret is refused, as is `alg: none`.
Verified tokens are remembered until they expire, so a client that sends the same token
on every request pays for its signature once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import tempfile
import time
import urllib.request
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gql.config import Settings
from gql.errors import ConfigurationError, Unauthenticated
from gql.identity import CUSTOMER, ROLES, SERVICE, Identity

DEV_KID = "ordergraph-dev"
DEV_ALGORITHM = "ES256"
REFETCH = 30.0  # seconds between two reads of a JWKS URL for an unknown kid
_REMEMBERED = 4096
CLAIMS = ("role", "scope", "customer_id", "sub")  # what ordergraph reads from a token
SUBJECT_LENGTH = 200  # a token's sub becomes the events' actor.id (at most 200 characters)
MAX_TTL = 365 * 86_400  # the longest `ordergraph token --ttl`: a year


def dev_key_path(data_dir: Path) -> Path:
    """Where `ordergraph token` keeps its development key: inside the data directory."""
    return data_dir / "token-key.pem"


def dev_private_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The development signing key, created on first use, readable by its owner only. A key
    file that a symbolic link points to, that another user owns or that others may read is
    refused: whoever can read or replace it can mint admin tokens."""
    path = dev_key_path(data_dir)
    if not os.path.lexists(path):
        _create_key(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        reason = "is a symbolic link" if exc.errno == errno.ELOOP else f"cannot be read ({exc.strerror})"
        raise ConfigurationError(f"the development key {path} {reason}: refusing it") from None
    with os.fdopen(fd, "rb") as key_file:
        found = os.fstat(key_file.fileno())
        if found.st_uid != os.geteuid():
            raise ConfigurationError(
                f"the development key {path} belongs to another user (uid {found.st_uid}): "
                "refusing it; remove it and `ordergraph token` makes a new one")
        if found.st_mode & 0o077:
            raise ConfigurationError(
                f"the development key {path} may be read by other users (mode "
                f"{found.st_mode & 0o777:o}): refusing it; `chmod 600` it if you trust it")
        pem = key_file.read()
    try:
        loaded = serialization.load_pem_private_key(pem, password=None)
    except ValueError:
        loaded = None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"the development key {path} is not an EC private key")
    return loaded


def _create_key(path: Path) -> None:
    """A new key at `path`, which appears whole or not at all (another process may race)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".token-key.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as new:
            new.write(pem)
        with contextlib.suppress(FileExistsError):  # the other process's key wins
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def mint(key: Any, claims: dict[str, Any], ttl: float, *, algorithm: str = DEV_ALGORITHM,
         kid: str | None = DEV_KID) -> str:
    """A signed token carrying `claims`, valid for `ttl` seconds."""
    now = int(time.time())
    payload = {"iat": now, "exp": now + int(ttl), **claims}
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def identity_from_claims(claims: dict[str, Any]) -> Identity:
    """The identity a verified token names; its claims must fit its role."""
    role, scope = claims.get("role"), claims.get("scope") or ""
    if role not in ROLES:
        raise Unauthenticated(f"the token's role must be one of {', '.join(ROLES)}")
    if not isinstance(scope, str) or (role == SERVICE) != bool(scope) or (
            scope and not _is_text(scope, SUBJECT_LENGTH)):
        raise Unauthenticated("a service token names its scope; other roles have none")
    customer = None
    if role == CUSTOMER:
        try:
            customer = uuid.UUID(claims.get("customer_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError, AttributeError):
            raise Unauthenticated("a customer token names its customer_id (a UUID)") from None
    subject = claims.get("sub") or (str(customer) if customer else role)
    if not _is_text(subject, SUBJECT_LENGTH):
        raise Unauthenticated(f"the token's sub must be text of at most {SUBJECT_LENGTH} "
                              "characters, without control characters")
    return Identity(role, subject, scope, customer, float(claims["exp"]))


def _is_text(value: Any, longest: int) -> bool:
    """A string PostgreSQL can store as text and a person can read: no NUL, no controls."""
    return (isinstance(value, str) and 0 < len(value) <= longest
            and not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value))


class Verifier:
    """Verifies bearer tokens with the configured keys; `configured` False means open mode."""

    def __init__(self, settings: Settings, data_dir: Path | None = None) -> None:
        self.settings = settings
        self.secret = settings.jwt_secret or None
        self.jwks = settings.jwks or None
        self.dev_key = None
        if settings.trust_dev_key:
            if data_dir is None:
                raise ConfigurationError("trusting the dev key needs a data directory")
            self.dev_key = dev_private_key(data_dir).public_key()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._read_at = float("-inf")
        self._stamp: float | None = None
        self._lock = asyncio.Lock()
        self._verified: OrderedDict[str, Identity] = OrderedDict()

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.jwks or self.dev_key)

    async def verify(self, token: str) -> Identity:
        """The token's identity, or Unauthenticated saying what is wrong with it."""
        known = self._verified.get(token)
        now = time.time()
        if known is not None and known.expires_at is not None \
                and known.expires_at + self.settings.jwt_leeway > now:
            return known
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        key, algorithm = await self._key(header)
        s = self.settings
        try:
            claims = jwt.decode(
                token, key, algorithms=[algorithm], leeway=s.jwt_leeway,
                audience=s.jwt_audience or None, issuer=s.jwt_issuer or None,
                options={"require": ["exp"], "verify_aud": bool(s.jwt_audience)})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        identity = identity_from_claims(claims)
        self._verified[token] = identity
        while len(self._verified) > _REMEMBERED:
            self._verified.popitem(last=False)
        return identity

    async def _key(self, header: dict[str, Any]) -> tuple[Any, str]:
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm == "HS256" and self.secret:
            return self.secret, "HS256"
        if self.dev_key is not None and kid == DEV_KID:
            return self.dev_key, DEV_ALGORITHM
        if not self.jwks or not isinstance(kid, str):
            raise Unauthenticated("the token is not signed with a key this server trusts")
        found = self._keys.get(kid)
        if found is None:
            async with self._lock:
                await self._reload()
            found = self._keys.get(kid)
        if found is None:
            raise Unauthenticated(f"no trusted key has kid {kid!r}")
        if found.algorithm_name != algorithm:
            raise Unauthenticated(f"key {kid!r} signs with {found.algorithm_name}, not {algorithm}")
        return found.key, found.algorithm_name

    async def _reload(self) -> None:
        assert self.jwks is not None
        if self.jwks.startswith(("https://", "http://")):
            if time.monotonic() - self._read_at < REFETCH:
                return
            self._read_at = time.monotonic()
            text = await asyncio.to_thread(_fetch, self.jwks)
        else:
            text = self._read_file()  # a small local file: no thread needed
            if text is None:
                return
        try:
            keys = jwt.PyJWKSet.from_dict(json.loads(text)).keys
        except (ValueError, jwt.PyJWTError):
            raise Unauthenticated("the key set is not a valid JWKS") from None
        self._keys = {k.key_id: k for k in keys if k.key_id}


    def _read_file(self) -> str | None:
        """The JWKS file's text, or None when it has not changed since the last read."""
        path = Path(self.jwks or "")
        try:
            stamp = path.stat().st_mtime_ns
            if stamp == self._stamp:
                return None
            text = path.read_text()
        except OSError as exc:
            raise Unauthenticated(f"the key set cannot be read: {exc.strerror}") from None
        self._stamp = stamp
        return text


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()
