"""Errors with one-line messages that name the problem and the fix; CLIs print them and exit 2."""


class NovumError(Exception):
    """Base class: ``str(err)`` is one line, shown to the user as is."""


class CheckpointError(NovumError):
    """A file that is not a (valid) checkpoint."""


class InputError(NovumError):
    """Bad user input: a missing file, a wrong shape, an unusable source."""
