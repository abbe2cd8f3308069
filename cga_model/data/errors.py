"""``DataError``: the one error type for a data file or folder that cannot be used as asked."""


class DataError(ValueError):
    """A data file or folder that cannot be used as asked (the message names it)."""
