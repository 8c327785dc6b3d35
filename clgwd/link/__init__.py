"""The cloud link: identity and enrollment, the websocket session, JSON-RPC commands,
outbox delivery and reconnect policy (see docs/protocol.md).

The package imports nothing eagerly: the reference cloud imports ``clgwd.protocol.rpc``
alone and must not load gateway internals with it. The component is ``CloudLink`` in
``clgwd.link.component``; ``LinkState`` is in ``clgwd.link.connection``.
"""
