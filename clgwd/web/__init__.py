"""The local HTTP listener: health, metrics, and (later) the onboarding page and API."""
