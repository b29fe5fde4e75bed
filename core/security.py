"""API tokens: `tl_` + 43 URL-safe characters. Only the SHA-256 of a token is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "tl_"


def new_token() -> str:
    """A fresh token; shown once to its owner, never stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    """What lists show: enough to tell tokens apart, useless to an attacker."""
    return token[:10]


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two hashes."""
    return hmac.compare_digest(a.encode(), b.encode())
