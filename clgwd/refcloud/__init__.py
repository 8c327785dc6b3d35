"""The reference cloud: a small but real server side of the clgwd protocol.

Used by the demo, the tests and the benchmarks. It speaks only the documented protocol
(``clgwd.protocol.rpc``) and never imports gateway internals, so it is an executable
specification of what a cloud must do.
"""
