class SimError(ValueError):
    """A user mistake in simulator input (bad profile, impossible config)."""
