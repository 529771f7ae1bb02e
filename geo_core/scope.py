"""Data scope: which organisations' rows a user may see, as the context RLS policies read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from geo_core.db import DbContext


class DataScope(StrEnum):
    self = "self"  # only rows the user owns (and his own user/org rows)
    org = "org"  # rows of the user's own organisation
    org_subtree = "org_subtree"  # rows of his organisation and everything below it
    all = "all"  # every row


SCOPE_RANK = {DataScope.self: 0, DataScope.org: 1, DataScope.org_subtree: 2, DataScope.all: 3}


@dataclass(frozen=True)
class Principal:
    """The authenticated actor of a request or job."""

    user_id: int
    username: str
    name: str
    org_id: int
    org_path: str
    scope: DataScope
    permissions: frozenset[str]
    session_id: str | None = None
    client: str = "web"

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    def db_context(self) -> DbContext:
        return scope_context(self.user_id, self.org_id, self.org_path, self.scope)


def widest(scopes: Iterable[DataScope]) -> DataScope:
    """A user with several roles sees the union, i.e. the widest of their scopes."""
    return max(scopes, key=SCOPE_RANK.__getitem__, default=DataScope.self)


def scope_context(user_id: int, org_id: int, org_path: str, scope: DataScope) -> DbContext:
    if scope is DataScope.all:
        return DbContext(user_id=user_id, org_id=org_id, scope_all=True)
    if scope is DataScope.org_subtree:
        lqueries: tuple[str, ...] = (f"{org_path}.*",)
    elif scope is DataScope.org:
        lqueries = (org_path,)
    else:
        lqueries = ()
    return DbContext(user_id=user_id, org_id=org_id, lqueries=lqueries)
