"""The predictor's exception for user mistakes."""


class PredictorError(ValueError):
    """A user mistake in predictor input or options (a trace without prompt text, a
    missing or corrupt model directory, an unknown backbone, a bad loss spec); the CLI
    prints it as one line."""
