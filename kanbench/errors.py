"""Errors that the command line turns into exit status 2 with a one-line message; Terminated, into 143."""


class UsageError(Exception):
    """Bad input from the user (a suite, a path, an argument): what was wrong, where, and what is allowed."""


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception (where an executor traps it): the run unwinds as for Ctrl-C, then exits 143."""
