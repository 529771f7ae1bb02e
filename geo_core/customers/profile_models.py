"""Profiles (建档): versioned field templates, one current profile per customer with its revisions, and
profile collection tasks (补录任务) for missing fields."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ARRAY, Boolean, DateTime, Enum, ForeignKey, Integer, LargeBinary, Numeric, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.customers.models import ProfileType
from geo_core.db import Base, TimestampMixin

PROFILE_TYPE = Enum(ProfileType, name="profile_type", native_enum=True)


class ProfileSource(StrEnum):
    mobile = "mobile"  # filled on the e-satchel / mobile app during a visit
    pc = "pc"
    import_ = "import"


class TaskStatus(StrEnum):
    open = "open"
    done = "done"  # every field the task asked for is filled (closed automatically)
    cancelled = "cancelled"


class ProfileTemplate(TimestampMixin, Base):
    """One version of a bank-defined field template (行方信息采集标准格式) for a profile type."""

    __tablename__ = "profile_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    profile_type: Mapped[ProfileType] = mapped_column(PROFILE_TYPE)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)  # latest version of its code
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)  # the one profiles of its type use
    is_builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class CustomerProfile(TimestampMixin, Base):
    """The current profile of a customer: data filled against one template version, scored."""

    __tablename__ = "customer_profiles"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    profile_type: Mapped[ProfileType] = mapped_column(PROFILE_TYPE)
    template_id: Mapped[int] = mapped_column(ForeignKey("profile_templates.id", ondelete="RESTRICT"))
    template_version: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    completeness: Mapped[Decimal] = mapped_column(Numeric(5, 4))
    is_complete: Mapped[bool] = mapped_column(Boolean)
    missing: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    missing_required: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    filled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(10), default="pc")


class CustomerProfileRevision(Base):
    """A saved revision of a profile (written by a trigger on every save)."""

    __tablename__ = "customer_profile_revisions"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_type: Mapped[ProfileType] = mapped_column(PROFILE_TYPE)
    template_id: Mapped[int] = mapped_column(ForeignKey("profile_templates.id", ondelete="RESTRICT"))
    template_version: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    completeness: Mapped[Decimal] = mapped_column(Numeric(5, 4))
    missing: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    filled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(10))


class ProfileCollectionTask(TimestampMixin, Base):
    """Collect the missing profile fields of one customer (assigned to his account manager)."""

    __tablename__ = "profile_collection_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    profile_type: Mapped[ProfileType] = mapped_column(PROFILE_TYPE)
    missing_fields: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    assignee_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(10), default=TaskStatus.open.value)
    batch_key: Mapped[str] = mapped_column(String(36))
    note: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

