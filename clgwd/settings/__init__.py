"""One owner for settings: the rule that merges the file, the page and the cloud.

``rule`` decides each key's effective value and its source (``default``, ``file``,
``page``, ``cloud``); ``saved`` reads and writes what the page and the cloud saved.
docs/settings.md describes the rule.
"""

from clgwd.settings.rule import (
    SAVED_KEYS,
    Effective,
    InvalidSavedSettings,
    Mark,
    SettingOverridden,
    Source,
    check_file_change,
    effective_pbx,
)
from clgwd.settings.saved import SavedSettings, forget_section, save_section
from clgwd.settings.sections import Prepared, prepare

__all__ = ["SAVED_KEYS", "Effective", "InvalidSavedSettings", "Mark", "Prepared",
           "SavedSettings", "SettingOverridden", "Source", "check_file_change",
           "effective_pbx", "forget_section", "prepare", "save_section"]
