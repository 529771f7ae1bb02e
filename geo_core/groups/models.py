"""Customer groups (客群), their approved member snapshot and the review log (审核日志)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Enum, ForeignKey, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.customers.models import CustomerKind
from geo_core.db import Base, TimestampMixin


def _values(enum: type[StrEnum]) -> list[str]:
    return [m.value for m in enum]


class GroupCategory(StrEnum):
    formal = "formal"  # 正式客群: formal customers
    potential = "potential"  # 潜在客群: potential customers
    list_ = "list"  # 名单客群: customers of imported lists (batches)


class GroupStatus(StrEnum):
    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    rejected = "rejected"


class ReviewAction(StrEnum):
    submit = "submit"
    approve = "approve"
    reject = "reject"
    withdraw = "withdraw"
    reset = "reset"  # an approved group edited: back to draft, snapshot dropped


class CustomerGroup(TimestampMixin, Base):
    __tablename__ = "customer_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))
    kind: Mapped[CustomerKind] = mapped_column(Enum(CustomerKind, name="customer_kind", native_enum=True))
    category: Mapped[GroupCategory] = mapped_column(Enum(GroupCategory, name="group_category", native_enum=True,
                                                               values_callable=_values))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    visibility: Mapped[str] = mapped_column(String(8), default="private")
    status: Mapped[GroupStatus] = mapped_column(Enum(GroupStatus, name="group_status", native_enum=True),
                                                default=GroupStatus.draft)
    version: Mapped[int] = mapped_column(Integer, default=1)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    review_comment: Mapped[str | None] = mapped_column(String(500))
    member_count: Mapped[int | None] = mapped_column(Integer)
    snapshot_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustomerGroupMember(Base):
    """The approved snapshot: the customers a campaign on this group works on."""

    __tablename__ = "customer_group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("customer_groups.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)


class CustomerGroupReview(Base):
    """One line of the review log: submit, approve, reject (with comment), withdraw, reset."""

    __tablename__ = "customer_group_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("customer_groups.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[ReviewAction] = mapped_column(Enum(ReviewAction, name="group_review_action", native_enum=True))
    comment: Mapped[str | None] = mapped_column(String(500))
    member_count: Mapped[int | None] = mapped_column(Integer)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
