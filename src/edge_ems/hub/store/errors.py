"""What goes wrong in the minute store, in the library's exception hierarchy."""

from __future__ import annotations

from ...exceptions import EdgeEmsError


class StoreError(EdgeEmsError):
    """The store's database failed or refused; what was not written is kept and retried."""


class SchemaError(StoreError):
    """The database holds a schema this version does not know (written by a newer one)."""


class QueryError(StoreError):
    """A query asks for something malformed: a cursor the store never gave, a bad range."""
