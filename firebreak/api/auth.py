"""Who may call what: API keys with roles, and HMA's keyless clients from trusted networks.

Every route names one permission; a role grants a set of them. A request without a valid key is
refused (401), one whose key's role lacks the permission too (403). The HMA-compatible routes
also accept keyless requests from `hma_trusted_networks`, because HMA's clients send no key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from firebreak.service import Firebreak

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            "banks:read",
            "banks:write",
            "banks:admin",
            "match",
            "review",
            "audit:read",
            "keys:admin",
            "live",
            "exchange",
        }
    ),
    # Reviewers: read banks, bank what they confirm, decide incidents, read the audit log.
    "moderator": frozenset({"banks:read", "banks:write", "match", "review", "audit:read", "live"}),
    # The platform's upload path and its services: hash, match, bank.
    "service": frozenset({"banks:read", "banks:write", "match", "live"}),
    # Another platform exchanging hashes: read banks and their hashes, look hashes up.
    "partner": frozenset({"banks:read", "match", "exchange"}),
}

_bearer = HTTPBearer(auto_error=False, description="An API key from `firebreak keys create`.")


@dataclass(frozen=True)
class Caller:
    """Who is calling: a key's name and role, or a trusted network's client."""

    name: str
    role: str
    banks: tuple[str, ...] | None = None
    """The banks this caller may pull from the feed; None: every shared bank."""

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"key:{self.name}"


def firebreak_of(request: Request) -> Firebreak:
    fb: Firebreak = request.app.state.fb
    return fb


def _key_caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "an API key is needed: Authorization: Bearer KEY", {"WWW-Authenticate": "Bearer"}
        )
    key = firebreak_of(request).store.keys.verify(credentials.credentials)
    if key is None:
        raise HTTPException(401, "the API key is not valid", {"WWW-Authenticate": "Bearer"})
    return Caller(key.name, key.role, key.banks)


def _check(caller: Caller, permission: str) -> Caller:
    if permission not in ROLE_PERMISSIONS.get(caller.role, frozenset()):
        raise HTTPException(403, f"the {caller.role} role may not do this ({permission})")
    return caller


def require(permission: str) -> Callable[..., Caller]:
    """A dependency: the calling key, which must grant `permission`."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        return _check(_key_caller(request, credentials), permission)

    return dependency


def require_hma(permission: str) -> Callable[..., Caller]:
    """Like `require`, but a keyless client on a trusted network acts as a service."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        if credentials is None and _trusted(request):
            host = request.client.host if request.client else "?"
            return _check(Caller(f"hma-client@{host}", "service"), permission)
        return _check(_key_caller(request, credentials), permission)

    return dependency


def trusted_networks(
    text: str,
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of a comma- or space-separated CIDR list; a bad entry raises ValueError."""
    parts = [p for p in text.replace(",", " ").split() if p]
    return [ipaddress.ip_network(p, strict=False) for p in parts]


def _trusted(request: Request) -> bool:
    networks = request.app.state.hma_networks
    if not networks or request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    return any(address in network for network in networks)
