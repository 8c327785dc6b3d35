"""The reference cloud (dev, demo, tests): speaks the documented protocol only."""
