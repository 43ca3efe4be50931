"""Errors the command line prints without a traceback."""


class UsageError(Exception):
    """A problem the operator can fix; printed as is, exit status 2."""
