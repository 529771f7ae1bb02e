"""Demo feed state: the accounts, loans and balance snapshots behind the seeded holdings columns (as if the
daily feed had run), some loans due soon or overdue, a few large balance changes and custom events.

Set-based and deterministic (derived from customer ids): deposits split into current and time deposit
accounts summing exactly to deposit_balance, one loan per customer with a loan balance, zero-balance accounts
for the other products held, snapshots for the as-of day and the day before."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

STATEMENTS = (
    # deposits: current account (all of it, or 40% when a time deposit is held) + time deposit (the rest)
    """INSERT INTO customer_accounts (account_no, customer_id, product_code, account_type, balance, currency,
                                      opened_on, status, as_of)
       SELECT 'A' || lpad(id::text, 10, '0') || '01', id, 'DEP_CURRENT', 'deposit',
              CASE WHEN 'DEP_TIME' = ANY (products) THEN round(deposit_balance * 0.4, 2) ELSE deposit_balance END,
              'CNY', date '2012-01-01' + (id * 37 % 4000), 'active', holdings_as_of
       FROM customers WHERE deposit_balance IS NOT NULL AND holdings_as_of IS NOT NULL""",
    """INSERT INTO customer_accounts (account_no, customer_id, product_code, account_type, balance, currency,
                                      opened_on, status, as_of)
       SELECT 'A' || lpad(id::text, 10, '0') || '02', id, 'DEP_TIME', 'deposit',
              deposit_balance - round(deposit_balance * 0.4, 2), 'CNY', date '2020-01-01' + (id * 13 % 2000),
              'active', holdings_as_of
       FROM customers
       WHERE deposit_balance IS NOT NULL AND holdings_as_of IS NOT NULL AND 'DEP_TIME' = ANY (products)""",
    # other (non-deposit, non-loan) products held: zero-balance accounts so products can be derived from rows
    """INSERT INTO customer_accounts (account_no, customer_id, product_code, account_type, balance, currency,
                                      opened_on, status, as_of)
       SELECT 'A' || lpad(c.id::text, 10, '0') || lpad((10 + p.n)::text, 2, '0'), c.id, p.code,
              CASE p.code WHEN 'WEALTH' THEN 'wealth' WHEN 'CARD_DEBIT' THEN 'card' ELSE 'other' END, 0, 'CNY',
              date '2018-01-01' + (c.id * 17 % 2500), 'active', c.holdings_as_of
       FROM customers c, unnest(c.products) WITH ORDINALITY AS p(code, n)
       WHERE c.holdings_as_of IS NOT NULL AND p.code NOT LIKE 'DEP\\_%' AND p.code NOT LIKE 'LOAN\\_%'""",
    # one loan per customer with a loan balance: ~1 in 10 due within a week, overdue ones where overdue_amount
    """INSERT INTO customer_loans (loan_no, customer_id, product_code, principal, balance, due_date, overdue_amount,
                                   overdue_days, status, as_of)
       SELECT 'L' || lpad(id::text, 10, '0') || '01', id,
              coalesce((SELECT p FROM unnest(products) p WHERE p LIKE 'LOAN\\_%' ORDER BY p LIMIT 1),
                       CASE kind WHEN 'company' THEN 'LOAN_BUSINESS' ELSE 'LOAN_CONSUMER' END),
              greatest(coalesce(credit_limit, loan_balance), loan_balance), loan_balance,
              CASE WHEN coalesce(overdue_amount, 0) > 0 THEN holdings_as_of - (5 + id % 60)
                   WHEN id % 10 = 0 THEN holdings_as_of + 1 + id % 7
                   ELSE holdings_as_of + 8 + id * 13 % 700 END,
              coalesce(overdue_amount, 0), CASE WHEN coalesce(overdue_amount, 0) > 0 THEN 5 + id % 60 ELSE 0 END,
              CASE WHEN coalesce(overdue_amount, 0) > 0 THEN 'overdue' ELSE 'normal' END, holdings_as_of
       FROM customers WHERE loan_balance IS NOT NULL AND holdings_as_of IS NOT NULL""",
    # snapshots: the as-of day and the day before; about 1 in 31 withdrew 80,000 or more on the day
    """INSERT INTO balance_snapshots (customer_id, day, deposit_total, loan_total)
       SELECT id, holdings_as_of, coalesce(deposit_balance, 0), coalesce(loan_balance, 0) FROM customers
       WHERE holdings_as_of IS NOT NULL""",
    """INSERT INTO balance_snapshots (customer_id, day, deposit_total, loan_total)
       SELECT id, holdings_as_of - 1,
              coalesce(deposit_balance, 0) + CASE WHEN id % 31 = 0 THEN 80000 + (id % 5) * 10000 ELSE 0 END,
              coalesce(loan_balance, 0) FROM customers WHERE holdings_as_of IS NOT NULL""",
)

EVENTS = """
    WITH mine AS (SELECT c.id, row_number() OVER (ORDER BY c.id) AS n FROM customers c
                  JOIN users u ON u.id = c.owner_user_id
                  WHERE u.username = 'am_430102_1_1' AND c.kind = :kind ORDER BY c.id LIMIT 3)
    INSERT INTO customer_events (customer_id, kind, title, event_date, calendar, recurrence, remind_days_before,
                                 note, created_by)
    SELECT mine.id, e.kind::customer_event_kind, e.title, e.day, e.cal::calendar_kind, e.rec::event_recurrence,
           e.before, e.note, (SELECT id FROM users WHERE username = 'am_430102_1_1')
    FROM mine JOIN (VALUES {values}) AS e(n, kind, title, day, cal, rec, before, note) ON e.n = mine.n
"""
PERSON_EVENTS = ("(1, 'gaokao', '孩子高考', date '2027-06-07', 'solar', 'once', 7, '准备助学贷款产品介绍'), "
                 "(2, 'birthday_custom', '农历生日', date '1975-09-16', 'lunar', 'yearly', 3, '习惯过农历生日'), "
                 "(3, 'anniversary', '结婚纪念日', date '2001-11-28', 'solar', 'yearly', 3, NULL)")
COMPANY_EVENTS = ("(1, 'restock', '每周进货日', date '2026-11-27', 'solar', 'weekly', 1, '进货需要资金周转'), "
                  "(2, 'anniversary', '开业周年', date '2019-12-01', 'solar', 'yearly', 7, NULL)")


def seed_feed_state(session: Session, scale: str = "small") -> int:
    """Accounts, loans, snapshots and a few events for the seeded customers; returns the loans created."""
    if scale != "small":  # the city-scale seed keeps to the holdings columns (benchmarks)
        return 0
    session.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
    loans = 0
    for statement in STATEMENTS:
        result = session.execute(text(statement))
        if "customer_loans" in statement.split("(")[0]:
            loans = result.rowcount
    session.execute(text(EVENTS.format(values=PERSON_EVENTS)), {"kind": "person"})
    session.execute(text(EVENTS.format(values=COMPANY_EVENTS)), {"kind": "company"})
    session.execute(text("SELECT set_config('gm.audit_mode', '', true)"))
    return loans
