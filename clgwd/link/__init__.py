"""The cloud link: identity and enrollment, the websocket session, JSON-RPC commands,
outbox delivery and reconnect policy (see docs/protocol.md)."""

from clgwd.link.link import CloudLink, LinkState

__all__ = ["CloudLink", "LinkState"]
