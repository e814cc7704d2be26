"""The analysis package's exception for user mistakes (a bad sweep spec, an empty results
folder); the CLI prints it as one line."""


class AnalysisError(ValueError):
    """A user mistake in a sweep spec, a results folder or report options."""
