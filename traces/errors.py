class TraceError(ValueError):
    """A user mistake in trace input or options; the CLI prints it as one line."""


def shown(value) -> str:
    """A value in an error message as the user wrote it: nan, 3.5, 'r0' (numpy scalars
    unwrapped, so never np.float64(nan))."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        value = item()
    return repr(value) if isinstance(value, str) else str(value)
