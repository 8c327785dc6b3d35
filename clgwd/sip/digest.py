"""SIP digest authentication (RFC 3261 §22, RFC 2617, RFC 8760): the client side.

Answers a 401 ``WWW-Authenticate`` or 407 ``Proxy-Authenticate`` challenge with MD5 or
SHA-256 (``-sess`` variants too), with ``qop=auth`` when offered.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final

from clgwd.sip.message import SipParseError

_PARAM: Final = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)\s*(?:,|$)')
_ALGORITHMS: Final = {"md5": "md5", "sha-256": "sha256"}


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None


def parse_challenge(value: str) -> Challenge:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"authentication scheme {scheme[:20]!r} is not Digest")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            raise SipParseError(f"bad Digest challenge near {rest[pos:pos + 30]!r}")
        raw = match.group(2)
        params[match.group(1).lower()] = raw[1:-1].replace('\\"', '"') if raw.startswith(
            '"') else raw
        pos = match.end()
    if "nonce" not in params or "realm" not in params:
        raise SipParseError("Digest challenge without realm or nonce")
    algorithm = params.get("algorithm", "MD5")
    if algorithm.lower().removesuffix("-sess") not in _ALGORITHMS:
        raise SipParseError(f"Digest algorithm {algorithm[:20]!r} is not supported")
    qop = tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(params["realm"], params["nonce"], algorithm, qop, params.get("opaque"))


def authorization(challenge: Challenge, method: str, uri: str, username: str,
                  password: str, *, cnonce: str | None = None, nc: int = 1) -> str:
    """The ``Authorization``/``Proxy-Authorization`` value answering ``challenge``."""
    algo = challenge.algorithm.lower()
    name = _ALGORITHMS[algo.removesuffix("-sess")]

    def h(text: str) -> str:
        return hashlib.new(name, text.encode()).hexdigest()

    cnonce = cnonce or secrets.token_hex(8)
    ha1 = h(f"{username}:{challenge.realm}:{password}")
    if algo.endswith("-sess"):
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    fields = [f'username="{username}"', f'realm="{challenge.realm}"',
              f'nonce="{challenge.nonce}"', f'uri="{uri}"',
              f"algorithm={challenge.algorithm}"]
    if "auth" in challenge.qop:
        nc_text = f"{nc:08x}"
        response = h(f"{ha1}:{challenge.nonce}:{nc_text}:{cnonce}:auth:{ha2}")
        fields += [f'response="{response}"', "qop=auth", f"nc={nc_text}",
                   f'cnonce="{cnonce}"']
    else:
        fields.append(f'response="{h(f"{ha1}:{challenge.nonce}:{ha2}")}"')
    if challenge.opaque is not None:
        fields.append(f'opaque="{challenge.opaque}"')
    return "Digest " + ", ".join(fields)
