"""Limits of `graft serve`: what one client may take from the server. Each is a `graft serve` option."""

from __future__ import annotations

from pydantic import Field

from graftlm.config.base import Section


class ServeConfig(Section):
    """What one client may take from `graft serve`."""

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body in bytes, counted while it is read (chunked bodies too); over it the answer is 413."""

    read_timeout_s: float = Field(default=30.0, gt=0)
    """Seconds a client has to send its whole request body; a slower one gets 408."""

    max_connections: int = Field(default=256, ge=1)
    """Open connections (and requests in progress) at once; beyond it new requests get 503."""

    keep_alive_s: int = Field(default=5, ge=1)
    """Seconds an idle keep-alive connection stays open."""
