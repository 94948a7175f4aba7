"""Errors that cross layers: each carries a message fit to show a person as it is."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


class CoursedeskError(Exception):
    """Base of every error coursedesk raises on purpose.

    `details` are fields an API answer carries beside `error`, for a client to act on
    (the existing stream a name was refused for, say); none unless a subclass sets them.
    """

    details: Mapping[str, object] = MappingProxyType({})


class ConfigError(CoursedeskError):
    """A setting is missing or wrong; the message names the variable."""


class DatabaseUnavailable(CoursedeskError):
    """The database could not be reached or started."""


class NotFound(CoursedeskError):
    """A thing asked for by id does not exist (HTTP 404)."""


class InvalidInput(CoursedeskError):
    """Input that passed parsing but makes no sense (HTTP 400)."""


class Conflict(CoursedeskError):
    """The thing exists but is in a state that refuses the action (HTTP 409)."""


class TooLarge(CoursedeskError):
    """A body or file over the size it may have (HTTP 413)."""


class UnsupportedType(CoursedeskError):
    """A body of a type the route does not read (HTTP 415)."""
