"""Errors a user can act on. The CLI prints them as one line and exits with status 2."""


class HarnessError(Exception):
    """A problem with the user's input or environment, stated in one line."""


class ConfigError(HarnessError):
    """task.yaml is invalid: the message names the file, the line and the field."""


class DataError(HarnessError):
    """A data file is invalid: the message names the file, the line and the field."""
