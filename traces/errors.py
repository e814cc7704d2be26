class TraceError(ValueError):
    """A user mistake in trace input or options; the CLI prints it as one line."""
