"""The store's one public error."""

from __future__ import annotations

from otsentry.common.errors import OtSentryError

__all__ = ["StoreError"]


class StoreError(OtSentryError):
    """The database cannot be reached, is not upgraded, or a URL is not a store URL.

    The message names the database (password hidden) and what to do.
    """
