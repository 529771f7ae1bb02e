"""Feed runs and the per-customer rows the daily feed maintains (accounts, loans, balance snapshots)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, DateTime, Enum, ForeignKey, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

import geo_core.customers.models  # noqa: F401  (customers table for the foreign keys)
from geo_core.db import Base, TimestampMixin


class FeedRunStatus(StrEnum):
    running = "running"
    done = "done"
    failed = "failed"


class CreditDecisionKind(StrEnum):
    approve = "approve"
    reject = "reject"
    manual = "manual"  # refer to a credit officer


class FeedRun(TimestampMixin, Base):
    """One import of one business day's directory: checksums, counts per table, per-row errors."""

    __tablename__ = "feed_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    business_day: Mapped[date] = mapped_column()
    directory: Mapped[str] = mapped_column(String(500))
    status: Mapped[FeedRunStatus] = mapped_column(Enum(FeedRunStatus, name="feed_run_status"),
                                                  default=FeedRunStatus.running)
    files: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    checksum: Mapped[str | None] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    errors: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    job_id: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustomerAccount(TimestampMixin, Base):
    __tablename__ = "customer_accounts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_no: Mapped[str] = mapped_column(String(40), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    product_code: Mapped[str] = mapped_column(String(32))
    account_type: Mapped[str] = mapped_column(String(16))
    balance: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    opened_on: Mapped[date | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16))
    as_of: Mapped[date] = mapped_column()


class CustomerLoan(TimestampMixin, Base):
    __tablename__ = "customer_loans"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    loan_no: Mapped[str] = mapped_column(String(40), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    product_code: Mapped[str] = mapped_column(String(32))
    principal: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    balance: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    due_date: Mapped[date] = mapped_column()
    overdue_amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    overdue_days: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16))
    as_of: Mapped[date] = mapped_column()


class BalanceSnapshot(Base):
    """Deposit and loan totals of one customer on one business day (large-change detection)."""

    __tablename__ = "balance_snapshots"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    deposit_total: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    loan_total: Mapped[Decimal] = mapped_column(Numeric(18, 2))


class CreditDecision(TimestampMixin, Base):
    """A pre-approved offer returned by the credit decision engine (not the granted limit: that comes from
    the feed into customers.credit_limit)."""

    __tablename__ = "credit_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    decision: Mapped[CreditDecisionKind] = mapped_column(Enum(CreditDecisionKind, name="credit_decision_kind"))
    credit_limit: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    rate: Mapped[Decimal | None] = mapped_column(Numeric(8, 4))
    pricing: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    valid_until: Mapped[date | None] = mapped_column()
    reasons: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    engine_ref: Mapped[str | None] = mapped_column(String(64))
    raw_response: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
