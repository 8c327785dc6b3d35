"""The hand-written user JSON equals the generic encoder's output, byte for byte.

The snapshot and the ``user.change`` payload carry it; any difference would change
every stored row and every upstream record, so it is checked on generated users with
unicode, quotes, backslashes, control characters and several devices.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from clgwd.pbx.model import Device, PbxUser
from clgwd.sync.records import encode_user

_TEXT = st.text(max_size=12)
_DEVICE = st.builds(Device, kind=_TEXT, model=_TEXT, mac=_TEXT, port_id=_TEXT,
                    sip_user=_TEXT)
_USER = st.builds(
    PbxUser, source_key=_TEXT, extension=_TEXT, first_name=_TEXT, last_name=_TEXT,
    display_name=_TEXT, email=_TEXT, client_username=_TEXT,
    dids=st.lists(_TEXT, max_size=3).map(tuple), caller_id=_TEXT,
    devices=st.lists(_DEVICE, max_size=3).map(tuple),
    groups=st.lists(_TEXT, max_size=3).map(tuple), department=_TEXT, location=_TEXT,
    language=_TEXT, enabled=st.booleans())


@given(_USER)
def test_encode_user_equals_the_generic_encoder(user: PbxUser) -> None:
    expected = json.dumps(user.as_json(), ensure_ascii=False, separators=(",", ":"))
    assert encode_user(user) == expected


def test_encode_user_escapes_what_json_must() -> None:
    user = PbxUser(source_key='k"1\\', first_name="Bj\u00f6rn\n\x01", enabled=False,
                   devices=(Device(mac="00:11"), Device(model="6930")))
    assert json.loads(encode_user(user)) == user.as_json()
