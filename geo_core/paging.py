"""Paged reads over select() statements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")
MAX_PAGE_SIZE = 500
PG_INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


def paginate(session: Session, stmt: Select[Any], page: int = 1, page_size: int = 20) -> Page[Any]:
    page = max(page, 1)
    page_size = min(max(page_size, 1), MAX_PAGE_SIZE)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = list(session.scalars(stmt.limit(page_size).offset((page - 1) * page_size)))
    return Page(items, total, page, page_size)


def like_pattern(q: str) -> str:
    """An ILIKE pattern matching `q` as a substring, with wildcards in `q` escaped."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def valid_id(value: int) -> bool:
    """Ids outside PostgreSQL's integer range cannot exist (and must not reach the database)."""
    return 0 < value <= PG_INT_MAX


def key_taken(session: Session, key: str, value: str, own_id: int | None = None) -> bool:
    """Is a unique business key (e.g. "orgs.code") used, even by a row outside the caller's scope?"""
    return bool(session.scalar(select(func.gm_key_taken(key, value, own_id))))
