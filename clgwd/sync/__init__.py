"""User sync: rules, diff, safety, schedule (reads via ``clgwd.pbx``, writes via ``clgwd.store``)."""
