"""User sync: rules, diff, safety and schedule.

Reads through ``clgwd.pbx``, writes through ``clgwd.store``.
"""
