"""Tokens for the "ours+auth" contender: an RSA key published as a JWKS file, and one token
per request line, as each workload's caller would hold it (Q1/Q4 the order's customer, Q2/Q3
staff, W1 the customer who places the order)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KID = "bench-1"


class Issuer:
    def __init__(self, work: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = work / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [{**jwk, "kid": KID, "alg": "RS256"}]}))
        self._tokens: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        """What `ordergraph serve` needs to require these tokens."""
        return {"ORDERGRAPH_JWKS": str(self.jwks)}

    def token(self, role: str, customer: uuid.UUID | None = None) -> str:
        key = f"{role}:{customer}"
        if key not in self._tokens:
            claims = {"role": role, "sub": str(customer or role), "exp": int(time.time()) + 6 * 3600}
            if customer is not None:
                claims["customer_id"] = str(customer)
            self._tokens[key] = jwt.encode(claims, self.key, algorithm="RS256",
                                           headers={"kid": KID})
        return self._tokens[key]


def with_token(token: str, body: str) -> str:
    """A line of wrk.lua's input that sends `token` with `body`."""
    return f"Bearer {token}\t{body}"


def split(line: str) -> tuple[str | None, str]:
    if line.startswith("Bearer ") and "\t" in line:
        head, body = line.split("\t", 1)
        return head.removeprefix("Bearer "), body
    return None, line
