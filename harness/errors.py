"""Errors a user can act on. The CLI prints them as one line and exits with status 2."""


class HarnessError(Exception):
    """A problem with the user's input or environment, stated in one line."""


class ConfigError(HarnessError):
    """task.yaml is invalid: the message names the file, the line and the field."""


class DataError(HarnessError):
    """A data file is invalid: the message names the file, the line and the field."""


class NotRun(Exception):
    """A strategy cannot run on this task or machine; the message says why, and the report shows it.

    Raised from `fit` (e.g. RAG with no documents). The other strategies still run.
    """
