"""Choice of the link's websocket backend (``cloud.websocket_backend``).

Both backends are imported here, at start-up, so choosing one later never imports a
module on the running event loop. picows is optional (extra ``fast``); when it is not
installed ``auto`` means websockets, and the config refuses an explicit ``picows``
(``clgwd.config.cloud``), so ``opener`` never has to fail.
"""

from __future__ import annotations

from types import ModuleType
from typing import Literal

from clgwd.link import ws
from clgwd.link.wsapi import OpenConnection

Backend = Literal["auto", "websockets", "picows"]

ws_picows: ModuleType | None
try:
    from clgwd.link import ws_picows
except ImportError:  # the optional extra is not installed
    ws_picows = None


def resolve(choice: Backend) -> Literal["websockets", "picows"]:
    """``auto`` means picows when installed, else websockets."""
    if choice == "auto":
        return "websockets" if ws_picows is None else "picows"
    return choice


def opener(choice: Backend) -> OpenConnection:
    """The ``open_connection`` of the chosen backend."""
    if resolve(choice) == "picows":
        if ws_picows is None:
            raise RuntimeError("cloud.websocket_backend is picows, but picows is not "
                               "installed (pip install 'clgwd[fast]')")
        function: OpenConnection = ws_picows.open_connection
        return function
    return ws.open_connection
