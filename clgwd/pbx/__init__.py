"""PBX user sources: one module per PBX family behind the ``UserSource`` protocol."""
