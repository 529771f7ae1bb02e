"""The daily reminder run: for one business day, create each manager's reminders from the archive and the feed,
and mark the ones left undone past their grace period as missed.

Idempotent: a reminder is unique per (customer, kind, ref, due date) and inserted with ON CONFLICT DO NOTHING,
so running a day twice (or a later day whose window overlaps) creates nothing twice. A reminder goes to the
customer's owner (管户客户经理) and carries the customer's org; customers without an owner get none.
Rules and thresholds: `ReminderRules` (env GM_REMINDER_*), documented in docs/REMINDERS.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session
from sqlalchemy.types import Date, Integer, String

from geo_core.customers.models import Customer, CustomerStatus
from geo_core.reminders.lunar import holiday_dates, occurrences
from geo_core.reminders.models import CustomerEvent, EventKind

EVENT_LABELS = {EventKind.birthday_custom: "生日", EventKind.restock: "进货日", EventKind.gaokao: "高考",
                EventKind.anniversary: "纪念日", EventKind.other: "事项"}


@dataclass(frozen=True)
class ReminderRules:
    birthday_days_before: int = 3
    holiday_days_before: int = 7
    holiday_min_deposit: Decimal = Decimal("50000")  # holiday care for formal customers with at least this
    balance_change_min: Decimal = Decimal("50000")  # |day-on-day change| of deposits or loans, yuan
    loan_due_days: int = 7
    grace_days: int = 3  # an open reminder becomes missed this many days after its due date

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ReminderRules:
        env = dict(os.environ if env is None else env)

        def num(name: str, default: Any, kind: type) -> Any:
            raw = env.get(f"GM_REMINDER_{name}")
            if raw in (None, ""):
                return default
            value = kind(raw)
            if value < 0:
                raise ValueError(f"GM_REMINDER_{name} must be >= 0")
            return value

        return cls(num("BIRTHDAY_DAYS", 3, int), num("HOLIDAY_DAYS", 7, int),
                   num("HOLIDAY_MIN_DEPOSIT", Decimal("50000"), Decimal),
                   num("BALANCE_CHANGE_MIN", Decimal("50000"), Decimal), num("LOAN_DUE_DAYS", 7, int),
                   num("GRACE_DAYS", 3, int))


INSERT = ("INSERT INTO reminders (customer_id, owner_user_id, org_id, kind, ref, due_date, title, detail) {select} "
          "ON CONFLICT (customer_id, kind, ref, due_date) DO NOTHING")
OWNED = "c.owner_user_id IS NOT NULL AND c.status = 'active'"


def _birthdays(session: Session, day: date, rules: ReminderRules) -> int:
    pairs: list[tuple[int, int, date]] = []
    for k in range(rules.birthday_days_before + 1):
        d = day + timedelta(days=k)
        pairs.append((d.month, d.day, d))
        if d.month == 2 and d.day == 28 and (d + timedelta(days=1)).month == 3:
            pairs.append((2, 29, d))  # 29 February birthdays on the 28th in common years
    stmt = text(INSERT.format(select=f"""
        SELECT c.id, c.owner_user_id, c.org_id, 'birthday', '', v.due, c.name || ' 生日',
               jsonb_build_object('birth_date', c.birth_date)
        FROM unnest(:months, :days, :dues) AS v(m, d, due)
        JOIN customers c ON extract(month FROM c.birth_date) = v.m AND extract(day FROM c.birth_date) = v.d
        WHERE c.kind = 'person' AND {OWNED}""")).bindparams(
        bindparam("months", type_=ARRAY(Integer)), bindparam("days", type_=ARRAY(Integer)),
        bindparam("dues", type_=ARRAY(Date)))
    return session.execute(stmt, {"months": [p[0] for p in pairs], "days": [p[1] for p in pairs],
                                  "dues": [p[2] for p in pairs]}).rowcount


def _holidays(session: Session, day: date, rules: ReminderRules) -> int:
    created = 0
    for code, name, when in holiday_dates(day, day + timedelta(days=rules.holiday_days_before)):
        created += session.execute(text(INSERT.format(select=f"""
            SELECT c.id, c.owner_user_id, c.org_id, 'holiday', CAST(:code AS text), CAST(:due AS date),
                   CAST(:name AS text) || '客户关怀：' || c.name,
                   jsonb_build_object('holiday', CAST(:code AS text), 'name', CAST(:name AS text))
            FROM customers c WHERE c.category = 'formal' AND {OWNED}
              AND coalesce(c.deposit_balance, 0) >= :min""")),
            {"code": code, "due": when, "name": name, "min": rules.holiday_min_deposit}).rowcount
    return created


def _balance_changes(session: Session, day: date, rules: ReminderRules) -> int:
    return session.execute(text(INSERT.format(select=f"""
        SELECT c.id, c.owner_user_id, c.org_id, 'balance_change', '', s.day,
               c.name || ' 大额资金变动：' ||
               CASE WHEN abs(s.deposit_total - p.deposit_total) >= :min
                    THEN '存款' || CASE WHEN s.deposit_total > p.deposit_total THEN '增加 ' ELSE '减少 ' END ||
                         to_char(abs(s.deposit_total - p.deposit_total), 'FM999999999990.00') || ' 元'
                    ELSE '贷款' || CASE WHEN s.loan_total > p.loan_total THEN '增加 ' ELSE '减少 ' END ||
                         to_char(abs(s.loan_total - p.loan_total), 'FM999999999990.00') || ' 元' END,
               jsonb_build_object('previous_day', p.day, 'deposit_before', p.deposit_total,
                                  'deposit_after', s.deposit_total, 'loan_before', p.loan_total,
                                  'loan_after', s.loan_total)
        FROM balance_snapshots s
        JOIN customers c ON c.id = s.customer_id
        JOIN LATERAL (SELECT day, deposit_total, loan_total FROM balance_snapshots p
                      WHERE p.customer_id = s.customer_id AND p.day < s.day ORDER BY p.day DESC LIMIT 1) p ON true
        WHERE s.day = :day AND {OWNED}
          AND (abs(s.deposit_total - p.deposit_total) >= :min OR abs(s.loan_total - p.loan_total) >= :min)""")),
        {"day": day, "min": rules.balance_change_min}).rowcount


def _loans(session: Session, day: date, rules: ReminderRules) -> tuple[int, int]:
    due = session.execute(text(INSERT.format(select=f"""
        SELECT c.id, c.owner_user_id, c.org_id, 'loan_due', l.loan_no, l.due_date,
               c.name || ' 贷款到期（借据 ' || l.loan_no || '，余额 ' ||
               to_char(l.balance, 'FM999999999990.00') || ' 元）',
               jsonb_build_object('loan_no', l.loan_no, 'product_code', l.product_code, 'balance', l.balance)
        FROM customer_loans l JOIN customers c ON c.id = l.customer_id
        WHERE l.status = 'normal' AND l.overdue_days = 0 AND l.due_date BETWEEN :day AND :until AND {OWNED}""")),
        {"day": day, "until": day + timedelta(days=rules.loan_due_days)}).rowcount
    # one reminder per overdue episode (loan no. @ first overdue day), due the day the run first sees it
    overdue = session.execute(text(f"""
        INSERT INTO reminders (customer_id, owner_user_id, org_id, kind, ref, due_date, title, detail)
        SELECT c.id, c.owner_user_id, c.org_id, 'loan_overdue', e.ref, :day,
               c.name || ' 贷款逾期（借据 ' || l.loan_no || '，逾期 ' ||
               to_char(l.overdue_amount, 'FM999999999990.00') || ' 元，' || l.overdue_days || ' 天）',
               jsonb_build_object('loan_no', l.loan_no, 'overdue_amount', l.overdue_amount,
                                  'overdue_days', l.overdue_days, 'overdue_since', e.since)
        FROM customer_loans l JOIN customers c ON c.id = l.customer_id
        CROSS JOIN LATERAL (SELECT l.as_of - greatest(l.overdue_days, 1) + 1 AS since) s
        CROSS JOIN LATERAL (SELECT l.loan_no || '@' || to_char(s.since, 'YYYYMMDD') AS ref, s.since) e
        WHERE l.status <> 'settled' AND (l.overdue_days > 0 OR l.status = 'overdue') AND e.since <= :day
          AND {OWNED}
          AND NOT EXISTS (SELECT 1 FROM reminders r WHERE r.customer_id = c.id AND r.kind = 'loan_overdue'
                          AND r.ref = e.ref)
        ON CONFLICT (customer_id, kind, ref, due_date) DO NOTHING"""), {"day": day}).rowcount
    return due, overdue


def _events(session: Session, day: date) -> int:
    rows = session.execute(
        select(CustomerEvent, Customer.name, Customer.owner_user_id, Customer.org_id)
        .join(Customer, Customer.id == CustomerEvent.customer_id)
        .where(Customer.owner_user_id.is_not(None), Customer.status == CustomerStatus.active)).all()
    values: list[dict[str, Any]] = []
    for event, name, owner, org in rows:
        window_end = day + timedelta(days=event.remind_days_before)
        for when in occurrences(event.event_date, event.calendar.value, event.recurrence.value, day, window_end):
            values.append({"c": event.customer_id, "o": owner, "g": org, "ref": str(event.id), "due": when,
                           "title": f"{name} {event.title}"[:200],
                           "detail": {"event_id": event.id, "event_kind": event.kind.value,
                                      "calendar": event.calendar.value, "note": event.note}})
    if not values:
        return 0
    stmt = text("INSERT INTO reminders (customer_id, owner_user_id, org_id, kind, ref, due_date, title, detail) "
                "VALUES (:c, :o, :g, 'custom_event', :ref, :due, :title, :detail) "
                "ON CONFLICT (customer_id, kind, ref, due_date) DO NOTHING").bindparams(
        bindparam("detail", type_=JSONB), bindparam("ref", type_=String), bindparam("due", type_=Date))
    return sum(session.execute(stmt, v).rowcount for v in values)


def mark_missed(session: Session, day: date, rules: ReminderRules) -> int:
    return session.execute(text(
        "UPDATE reminders SET status = 'missed', missed_at = now(), updated_at = now() "
        "WHERE status = 'open' AND due_date < :cutoff"), {"cutoff": day - timedelta(days=rules.grace_days)}).rowcount


def generate_reminders(session: Session, day: date, rules: ReminderRules | None = None) -> dict[str, int]:
    """Create the reminders due from `day` on (each kind's look-ahead window) and mark the overdue ones missed.
    Runs in the caller's (elevated) transaction; bulk statements are audited one row per statement."""
    rules = rules or ReminderRules.from_env()
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x474D5245})  # one run at a time
    session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    loan_due, loan_overdue = _loans(session, day, rules)
    counts = {"birthday": _birthdays(session, day, rules), "holiday": _holidays(session, day, rules),
              "balance_change": _balance_changes(session, day, rules), "loan_due": loan_due,
              "loan_overdue": loan_overdue, "custom_event": _events(session, day),
              "missed": mark_missed(session, day, rules)}
    session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
    return counts
