"""Errors of the store room. Each carries a message that says what to do."""


class StoreError(Exception):
    """Base class for persistence errors a user may see."""


class ConfigError(StoreError):
    """An environment variable holds a value the product cannot use."""


class DatabaseUnavailable(StoreError):
    """The database cannot be reached or is not migrated."""


class NotFound(StoreError):
    """A record asked for by id does not exist."""


class ArtifactError(StoreError):
    """An artifact could not be written or read."""
