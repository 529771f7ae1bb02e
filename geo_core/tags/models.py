"""Tag definitions and customer tags."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Enum, ForeignKey, Integer, String, cast, func, literal
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.db import Base, TimestampMixin


class TagKind(StrEnum):
    manual = "manual"  # put on and taken off by people (or an import)
    rule = "rule"  # computed from a rule by the recompute job


class TagSource(StrEnum):
    manual = "manual"
    rule = "rule"
    import_ = "import"


class Visibility(StrEnum):
    public = "public"
    private = "private"


class Tag(TimestampMixin, Base):
    """A tag definition: code, zh name, category, colour; a rule tag carries its rule tree."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    category: Mapped[str] = mapped_column(String(32), default="other")
    color: Mapped[str] = mapped_column(String(7), default="#1677ff")
    description: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[TagKind] = mapped_column(Enum(TagKind, name="tag_kind", native_enum=True))
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    visibility: Mapped[str] = mapped_column(String(8), default=Visibility.private.value)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    computed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    computed_added: Mapped[int | None] = mapped_column(Integer)
    computed_removed: Mapped[int | None] = mapped_column(Integer)


class CustomerTag(Base):
    """A tag on a customer, with where it came from, who put it and when."""

    __tablename__ = "customer_tags"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[TagSource] = mapped_column(Enum(TagSource, name="tag_source", native_enum=True,
                                                   values_callable=lambda e: [m.value for m in e]))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def source_value(source: TagSource) -> Any:
    """A tag source as a typed SQL value (for INSERT ... SELECT)."""
    return cast(literal(source.value), CustomerTag.__table__.c.source.type)
