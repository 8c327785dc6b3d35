"""What both ends of the cloud link share (the gateway's ``link`` and ``tunnel`` parts and
the reference cloud): the JSON-RPC envelope and request matching (``rpc``) with its JSON
Schema (``schemas/``), the binary-lane contract (``channel``), link socket options
(``sockopts``), and the tunnel: wire format (``wire``) and engine (``session`` over
``credit`` over ``scheduler``, with ``streams``).

Standard library only, apart from shared core helpers (``clgwd.tasks``, ``clgwd.errors``):
the reference cloud imports this package and nothing else of the gateway.
"""
