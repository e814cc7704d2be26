"""The live package's exception for user mistakes and unusable set-ups."""


class LiveError(ValueError):
    """A bad input or an environment live mode cannot work with (one line, caught by the CLI)."""
