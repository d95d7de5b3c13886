"""Errors that the command line turns into exit status 2 with a one-line message."""


class UsageError(Exception):
    """Bad input from the user (a suite, a path, an argument): what was wrong, where, and what is allowed."""
