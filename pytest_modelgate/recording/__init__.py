"""Recorded calls: cassettes on vcrpy, with secrets scrubbed and the real timing kept.

Nothing here is imported by the plugin until a recording mode is wired in; vcrpy itself is only
imported inside the functions that need it, so the plugin stays light when unused.
"""
