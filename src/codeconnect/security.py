"""Secrets: generation (>= 128 random bits), storage as hashes, comparison in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_id() -> str:
    """A URL-safe, unguessable identifier (128 random bits)."""
    return secrets.token_urlsafe(16)


def new_secret() -> str:
    """A URL-safe credential (256 random bits)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
