"""Grid staffing models (定格-定岗-定人-定责): grid assistants, post assignments with history, hand-overs."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Date, DateTime, Enum, ForeignKey, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo_core.db import Base, TimestampMixin


class AssistantRole(StrEnum):
    """What kind of person a grid assistant (网格三员) is; most are not bank employees."""

    village_cadre = "village_cadre"  # 村/社区干部
    party_member = "party_member"  # 党员
    volunteer = "volunteer"  # 志愿者
    merchant_rep = "merchant_rep"  # 商户代表
    other = "other"  # 其他


class AssistantStatus(StrEnum):
    active = "active"
    inactive = "inactive"


class GridPost(StrEnum):
    grid_leader = "grid_leader"  # 网格长: at most one current per grid
    account_manager = "account_manager"  # 客户经理
    grid_assistant = "grid_assistant"  # 网格协管员 (a user or an external grid assistant)


ASSISTANT_ROLE_LABELS = {"village_cadre": "村/社区干部", "party_member": "党员", "volunteer": "志愿者",
                         "merchant_rep": "商户代表", "other": "其他"}
POST_LABELS = {"grid_leader": "网格长", "account_manager": "客户经理", "grid_assistant": "网格协管员"}


class GridAssistant(TimestampMixin, Base):
    """A grid assistant (网格三员): often an external person; owned by an org, which decides who sees him."""

    __tablename__ = "grid_assistants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[AssistantRole] = mapped_column(
        Enum(AssistantRole, name="assistant_role", native_enum=True), default=AssistantRole.other
    )
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[AssistantStatus] = mapped_column(
        Enum(AssistantStatus, name="assistant_status", native_enum=True), default=AssistantStatus.active
    )
    notes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_grid_assistants_org_id", "org_id"),
        Index("ix_grid_assistants_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    )


class GridAssignment(TimestampMixin, Base):
    """Someone holds a post on a grid for a period. Ending sets valid_to; rows are never deleted."""

    __tablename__ = "grid_assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"))
    post: Mapped[GridPost] = mapped_column(Enum(GridPost, name="grid_post", native_enum=True))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    assistant_id: Mapped[int | None] = mapped_column(ForeignKey("grid_assistants.id", ondelete="RESTRICT"))
    responsibilities: Mapped[str | None] = mapped_column(Text)
    kpi_targets: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    valid_from: Mapped[date] = mapped_column(Date, server_default=func.current_date())
    valid_to: Mapped[date | None] = mapped_column(Date)
    ended_reason: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (assistant_id IS NULL)", name="one_holder"),
        CheckConstraint("assistant_id IS NULL OR post = 'grid_assistant'", name="assistant_post"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_period"),
        CheckConstraint("jsonb_typeof(kpi_targets) = 'object'", name="kpi_object"),
        Index("uq_grid_assignments_current_leader", "grid_id", unique=True,
              postgresql_where=text("valid_to IS NULL AND post = 'grid_leader'")),
        Index("uq_grid_assignments_current_user", "grid_id", "post", "user_id", unique=True,
              postgresql_where=text("valid_to IS NULL AND user_id IS NOT NULL")),
        Index("uq_grid_assignments_current_assistant", "grid_id", "post", "assistant_id", unique=True,
              postgresql_where=text("valid_to IS NULL AND assistant_id IS NOT NULL")),
        Index("ix_grid_assignments_grid_id", "grid_id"),
        Index("ix_grid_assignments_user_current", "user_id", postgresql_where=text("valid_to IS NULL")),
        Index("ix_grid_assignments_assistant_id", "assistant_id"),
    )

    @property
    def is_current(self) -> bool:
        return self.valid_to is None


class Handover(Base):
    """A hand-over (移交) of one user's posts on a grid to another user; append-only."""

    __tablename__ = "grid_handovers"

    id: Mapped[int] = mapped_column(primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"))
    from_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    to_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    reason: Mapped[str] = mapped_column(String(500))
    include_customers: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    moved_assignments: Mapped[int] = mapped_column(default=0, server_default="0")
    moved_customers: Mapped[int] = mapped_column(default=0, server_default="0")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))

    __table_args__ = (
        CheckConstraint("btrim(reason) <> ''", name="reason_given"),
        CheckConstraint("from_user_id <> to_user_id", name="different_users"),
        Index("ix_grid_handovers_grid_id", "grid_id"),
        Index("ix_grid_handovers_from_user_id", "from_user_id"),
        Index("ix_grid_handovers_to_user_id", "to_user_id"),
    )
