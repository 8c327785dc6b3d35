"""``clgwd sync --preview`` when no daemon runs: read the source, diff, change nothing.

The technician may want to see what the first sync (or the next one) would do before
starting the service. This builds the same source and engine the daemon would, but over
a ``Store`` opened read-only (``ReadOnlyDatabase``): the snapshot is read, nothing is
written, no migration runs and the writer lock is never taken. The report is the same
``SyncOutcome`` the daemon's ``sync.preview`` returns.
"""

from __future__ import annotations

import logging

from clgwd.config import ClgwdConfig
from clgwd.config.pbx import PbxConfig
from clgwd.errors import ClgwdError
from clgwd.pbx.factory import build_source
from clgwd.settings import SavedSettings
from clgwd.store import Store
from clgwd.sync.engine import SyncEngine, SyncOutcome

_LOGGER = logging.getLogger(__name__)


class NoSourceConfigured(ClgwdError):
    code = "pbx_not_configured"


async def preview_without_daemon(config: ClgwdConfig, actor: str) -> SyncOutcome:
    """The daemon's preview, computed here from the config and the stored snapshot."""
    async with Store(config, read_only=True) as store:
        pbx = await _effective_pbx(store, config)
        source = build_source(pbx)
        if source is None:
            raise NoSourceConfigured("no PBX is configured (pbx.type is none, and none "
                                     "was saved from the onboarding page)")
        engine = SyncEngine(store, source, pbx.effective_source_id, config.sync,
                            pbx.read_timeout)
        return await engine.run(actor=actor, trigger="preview", preview=True)


async def _effective_pbx(store: Store, config: ClgwdConfig) -> PbxConfig:
    """The effective PBX section, by the daemon's own rule (``clgwd.settings``)."""
    effective = (await SavedSettings.load(store)).resolve(config)
    for note in effective.notes:
        _LOGGER.warning("Sync settings: %s", note)
    return effective.config.pbx
