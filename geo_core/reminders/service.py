"""Reminders for managers: lists (mine / my team's), mark done with an action note, handled-vs-missed statistics.

Visibility is row-level security: a reminder is visible when its org is in the caller's scope or it is
addressed to him, so an account manager (scope self) sees exactly his own and a branch leader his branch's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from geo_core.customers.models import Customer
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.orgs.models import Org
from geo_core.paging import Page, valid_id
from geo_core.reminders.models import Reminder, ReminderStatus
from geo_core.scope import Principal
from geo_core.users.models import User


def get_reminder(session: Session, reminder_id: int) -> Reminder:
    reminder = session.get(Reminder, reminder_id) if valid_id(reminder_id) else None
    if reminder is None:
        raise NotFound("提醒不存在", code="REMINDER_NOT_FOUND")
    return reminder


def select_reminders(actor: Principal, *, scope: str = "mine", status: str | None = None, kind: str | None = None,
                     due_from: date | None = None, due_to: date | None = None, customer_id: int | None = None,
                     owner_user_id: int | None = None, org_id: int | None = None) -> Select[Any]:
    """Reminders with their customer's name; `scope` mine = addressed to me, team = all I may see."""
    stmt = (select(Reminder, Customer.name, User.name)
            .outerjoin(Customer, Customer.id == Reminder.customer_id)
            .outerjoin(User, User.id == Reminder.owner_user_id)
            .order_by(Reminder.due_date, Reminder.id))
    if scope == "mine":
        stmt = stmt.where(Reminder.owner_user_id == actor.user_id)
    for column, value in ((Reminder.status, status), (Reminder.kind, kind), (Reminder.customer_id, customer_id),
                          (Reminder.owner_user_id, owner_user_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    if due_from is not None:
        stmt = stmt.where(Reminder.due_date >= due_from)
    if due_to is not None:
        stmt = stmt.where(Reminder.due_date <= due_to)
    if org_id is not None:
        path = select(Org.path).where(Org.id == org_id).scalar_subquery()
        stmt = stmt.where(Reminder.org_id.in_(select(Org.id).where(Org.path.op("<@")(path))))
    return stmt


def list_reminders(session: Session, actor: Principal, *, page: int = 1, page_size: int = 20,
                   **filters: Any) -> Page[Any]:
    stmt = select_reminders(actor, **filters)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.execute(stmt.limit(page_size).offset((page - 1) * page_size)).all()
    return Page([(r, c, o) for r, c, o in rows], total, page, page_size)


def mark_done(session: Session, actor: Principal, reminder_id: int, note: str) -> Reminder:
    """Close an open reminder with what was done (a note is required). Missed or done ones are final."""
    reminder = get_reminder(session, reminder_id)
    if not note or not note.strip():
        raise ValidationFailed.on("note", "请填写处理情况")
    if reminder.status is not ReminderStatus.open:
        raise Conflict("该提醒已处理或已错过，不能再处理", code="REMINDER_CLOSED",
                       detail={"status": reminder.status.value})
    reminder.status = ReminderStatus.done
    reminder.action_note = note.strip()
    reminder.done_at = datetime.now(UTC)
    reminder.done_by = actor.user_id
    session.flush()
    return reminder


@dataclass(frozen=True)
class StatRow:
    key_id: int
    name: str
    total: int
    done: int
    missed: int
    open: int

    @property
    def handled_rate(self) -> float | None:
        closed = self.done + self.missed
        return round(self.done / closed, 4) if closed else None


def reminder_stats(session: Session, *, date_from: date, date_to: date, group_by: str = "owner",
                   org_id: int | None = None, kind: str | None = None) -> list[StatRow]:
    """Handled (done) vs missed vs still open, per manager or per org, for reminders due in the period; only
    reminders the caller may see are counted."""
    if date_to < date_from:
        raise ValidationFailed.on("date_to", "结束日期不能早于开始日期")
    key = Reminder.owner_user_id if group_by == "owner" else Reminder.org_id
    name_table = User if group_by == "owner" else Org
    counts = [func.count(case((Reminder.status == s, 1))).label(s.value) for s in ReminderStatus]
    stmt = (select(key.label("key_id"), func.count().label("total"), *counts)
            .where(Reminder.due_date.between(date_from, date_to)).group_by(key))
    if kind is not None:
        stmt = stmt.where(Reminder.kind == kind)
    if org_id is not None:
        path = select(Org.path).where(Org.id == org_id).scalar_subquery()
        stmt = stmt.where(Reminder.org_id.in_(select(Org.id).where(Org.path.op("<@")(path))))
    sub = stmt.subquery()
    rows = session.execute(select(sub, name_table.name).outerjoin(name_table, name_table.id == sub.c.key_id)
                           .order_by(sub.c.key_id)).all()
    return [StatRow(r.key_id, r.name or "", r.total, r.done, r.missed, r.open) for r in rows]
