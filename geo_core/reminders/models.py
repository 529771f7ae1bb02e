"""Custom customer events (set while profiling) and customer care reminders."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, DateTime, Enum, ForeignKey, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

import geo_core.customers.models  # noqa: F401  (customers table for the foreign keys)
from geo_core.db import Base, TimestampMixin


class EventKind(StrEnum):
    birthday_custom = "birthday_custom"  # e.g. a lunar birthday the ID number cannot tell
    restock = "restock"  # a merchant's restocking day
    gaokao = "gaokao"  # a child's college entrance exam
    anniversary = "anniversary"
    other = "other"


class CalendarKind(StrEnum):
    solar = "solar"
    lunar = "lunar"


class Recurrence(StrEnum):
    once = "once"
    yearly = "yearly"
    monthly = "monthly"
    weekly = "weekly"


class ReminderKind(StrEnum):
    birthday = "birthday"
    holiday = "holiday"
    balance_change = "balance_change"
    loan_due = "loan_due"
    loan_overdue = "loan_overdue"
    custom_event = "custom_event"


class ReminderStatus(StrEnum):
    open = "open"
    done = "done"
    missed = "missed"


class CustomerEvent(TimestampMixin, Base):
    __tablename__ = "customer_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[EventKind] = mapped_column(Enum(EventKind, name="customer_event_kind"))
    title: Mapped[str] = mapped_column(String(100))
    event_date: Mapped[date] = mapped_column()
    calendar: Mapped[CalendarKind] = mapped_column(Enum(CalendarKind, name="calendar_kind"),
                                                   default=CalendarKind.solar)
    recurrence: Mapped[Recurrence] = mapped_column(Enum(Recurrence, name="event_recurrence"), default=Recurrence.once)
    remind_days_before: Mapped[int] = mapped_column(default=3)
    note: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Reminder(TimestampMixin, Base):
    """One thing a manager should do for one customer by a date; open until done (with a note) or missed."""

    __tablename__ = "reminders"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    owner_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="RESTRICT"))
    kind: Mapped[ReminderKind] = mapped_column(Enum(ReminderKind, name="reminder_kind"))
    ref: Mapped[str] = mapped_column(String(64), default="")
    due_date: Mapped[date] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[ReminderStatus] = mapped_column(Enum(ReminderStatus, name="reminder_status"),
                                                   default=ReminderStatus.open)
    action_note: Mapped[str | None] = mapped_column(String(1000))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    missed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
