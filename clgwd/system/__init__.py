"""The ``system`` part: reboot, factory reset, updates, log collection, remote config."""

from clgwd.system.component import DaemonHooks, SystemComponent
from clgwd.system.reset import ResetGate

__all__ = ["DaemonHooks", "ResetGate", "SystemComponent"]
