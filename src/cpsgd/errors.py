"""The error types a user of cpsgd can see.

The CLI prints any ``CpsgdError`` as one line and exits with status 2; anything else is a bug.
"""


class CpsgdError(Exception):
    """Base of every error that is the user's input, not a bug in cpsgd."""


class BitstreamError(CpsgdError):
    """A .cpsgd file (or one of its sections) is malformed, truncated or out of limits."""


class InputError(CpsgdError):
    """A missing or unreadable input, an existing output, or an option out of range."""
