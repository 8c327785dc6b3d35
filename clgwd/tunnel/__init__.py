"""Reverse tunnels over the cloud link: frames, flow control, allowlist, tickets, audit."""
