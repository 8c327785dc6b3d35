"""Choice of the link's websocket backend (``cloud.websocket_backend``).

The chosen backend module (and its library: websockets or picows) is imported when the
link first connects, in a worker thread (``load_opener``), so a gateway that is not
enrolled never loads either. picows is optional (extra ``fast``); when it is not
installed ``auto`` means websockets, and the config refuses an explicit ``picows``
(``clgwd.config.cloud``), so ``opener`` never has to fail.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Literal

from clgwd.link.wsapi import OpenConnection
from clgwd.tasks import import_off_loop

Backend = Literal["auto", "websockets", "picows"]
MODULES = {"websockets": "clgwd.link.ws", "picows": "clgwd.link.ws_picows"}


def resolve(choice: Backend) -> Literal["websockets", "picows"]:
    """``auto`` means picows when installed, else websockets."""
    if choice == "auto":
        return "picows" if importlib.util.find_spec("picows") is not None else "websockets"
    return choice


def opener(choice: Backend) -> OpenConnection:
    """The ``open_connection`` of the chosen backend (imports it here if needed; from
    the event loop, use ``load_opener``)."""
    function: OpenConnection = importlib.import_module(
        MODULES[resolve(choice)]).open_connection
    return function


async def load_opener(choice: Backend) -> OpenConnection:
    """``opener``, with the backend imported in a worker thread the first time."""
    await import_off_loop(MODULES[resolve(choice)])
    return opener(choice)
