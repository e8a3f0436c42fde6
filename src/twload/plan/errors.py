"""The one exception for user mistakes in a plan."""


class PlanError(ValueError):
    """A user mistake: shown as one line on stderr, exit code 2."""
