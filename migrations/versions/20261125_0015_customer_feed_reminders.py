"""bank data feed (accounts, loans, daily balance snapshots, feed runs), custom customer events (set while
profiling), customer care reminders (客户关怀提醒) and credit-engine decisions; scoped and audited

Child tables of customers follow their customer's visibility (the customers policy: org in scope or
managed by the caller); reminders carry the customer's org and the manager they are for; feed runs are
visible to scope-all users and to whoever started them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql_helpers import SCOPE_ALL, app_role, audit_table, enable_org_scope, grant_app

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

ENUMS = {
    "feed_run_status": ("running", "done", "failed"),
    "customer_event_kind": ("birthday_custom", "restock", "gaokao", "anniversary", "other"),
    "calendar_kind": ("solar", "lunar"),
    "event_recurrence": ("once", "yearly", "monthly", "weekly"),
    "reminder_kind": ("birthday", "holiday", "balance_change", "loan_due", "loan_overdue", "custom_event"),
    "reminder_status": ("open", "done", "missed"),
    "credit_decision_kind": ("approve", "reject", "manual"),
}
CHILD_TABLES = ("customer_accounts", "customer_loans", "balance_snapshots", "customer_events", "credit_decisions")


def _enum(name: str) -> postgresql.ENUM:
    return postgresql.ENUM(*ENUMS[name], name=name, create_type=False)


def _ts() -> list[sa.Column]:
    return [sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)]


def _customer_fk() -> sa.Column:
    return sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)


def _money(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Numeric(18, 2), nullable=nullable)


def upgrade() -> None:
    for name, values in ENUMS.items():
        postgresql.ENUM(*values, name=name).create(op.get_bind())

    op.create_table(
        "feed_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("directory", sa.String(500), nullable=False),
        sa.Column("status", _enum("feed_run_status"), nullable=False, server_default="running"),
        # {file name: {sha256, rows, encoding}} and the digest over all of them (same files -> same checksum)
        sa.Column("files", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("checksum", sa.String(64), nullable=True),
        # {table: {inserted, updated, unchanged, deleted}}
        sa.Column("counts", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("errors", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("requested_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_ts(),
    )
    op.create_index("ix_feed_runs_day", "feed_runs", ["business_day", "id"])

    op.create_table(
        "customer_accounts",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("account_no", sa.String(40), nullable=False, unique=True),
        _customer_fk(),
        sa.Column("product_code", sa.String(32), nullable=False),
        sa.Column("account_type", sa.String(16), nullable=False),  # deposit | wealth | card | other
        _money("balance"),
        sa.Column("currency", sa.String(3), nullable=False, server_default="CNY"),
        sa.Column("opened_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),  # active | frozen | closed
        sa.Column("as_of", sa.Date(), nullable=False),
        *_ts(),
        sa.CheckConstraint("account_type IN ('deposit', 'wealth', 'card', 'other')", name="account_type_known"),
        sa.CheckConstraint("status IN ('active', 'frozen', 'closed')", name="account_status_known"),
    )
    op.create_index("ix_customer_accounts_customer", "customer_accounts", ["customer_id"])

    op.create_table(
        "customer_loans",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("loan_no", sa.String(40), nullable=False, unique=True),
        _customer_fk(),
        sa.Column("product_code", sa.String(32), nullable=False),
        _money("principal"),
        _money("balance"),
        sa.Column("due_date", sa.Date(), nullable=False),
        _money("overdue_amount"),
        sa.Column("overdue_days", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),  # normal | overdue | settled
        sa.Column("as_of", sa.Date(), nullable=False),
        *_ts(),
        sa.CheckConstraint("status IN ('normal', 'overdue', 'settled')", name="loan_status_known"),
        sa.CheckConstraint("overdue_days >= 0", name="overdue_days_positive"),
    )
    op.create_index("ix_customer_loans_customer", "customer_loans", ["customer_id"])
    op.create_index("ix_customer_loans_due", "customer_loans", ["due_date"], postgresql_where=sa.text(
        "status <> 'settled'"))

    op.create_table(
        "balance_snapshots",
        _customer_fk(),
        sa.Column("day", sa.Date(), nullable=False),
        _money("deposit_total"),
        _money("loan_total"),
        sa.PrimaryKeyConstraint("customer_id", "day"),
    )
    op.create_index("ix_balance_snapshots_day", "balance_snapshots", ["day"])

    op.create_table(
        "customer_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        _customer_fk(),
        sa.Column("kind", _enum("customer_event_kind"), nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
        # always a solar date; calendar lunar = it recurs on the lunar month/day this date falls on
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.Column("calendar", _enum("calendar_kind"), nullable=False, server_default="solar"),
        sa.Column("recurrence", _enum("event_recurrence"), nullable=False, server_default="once"),
        sa.Column("remind_days_before", sa.Integer(), nullable=False, server_default="3"),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("updated_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        *_ts(),
        sa.CheckConstraint("remind_days_before BETWEEN 0 AND 60", name="remind_days_range"),
        sa.CheckConstraint("calendar = 'solar' OR recurrence IN ('once', 'yearly')", name="lunar_once_or_yearly"),
    )
    op.create_index("ix_customer_events_customer", "customer_events", ["customer_id"])

    op.create_table(
        "reminders",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        _customer_fk(),
        sa.Column("owner_user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("kind", _enum("reminder_kind"), nullable=False),
        # what the reminder is about within its kind: holiday code, loan no. (@ first overdue day for an
        # overdue episode), event id; '' if nothing more
        sa.Column("ref", sa.String(64), nullable=False, server_default=""),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("detail", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", _enum("reminder_status"), nullable=False, server_default="open"),
        sa.Column("action_note", sa.String(1000), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("missed_at", sa.DateTime(timezone=True), nullable=True),
        *_ts(),
        sa.UniqueConstraint("customer_id", "kind", "ref", "due_date", name="uq_reminders_customer_kind_ref_due"),
        sa.CheckConstraint("status <> 'done' OR (action_note IS NOT NULL AND done_at IS NOT NULL)",
                           name="done_has_note"),
    )
    op.create_index("ix_reminders_owner_due", "reminders", ["owner_user_id", "due_date"])
    op.create_index("ix_reminders_org_due", "reminders", ["org_id", "due_date"])
    op.create_index("ix_reminders_open_due", "reminders", ["due_date"], postgresql_where=sa.text("status = 'open'"))

    op.create_table(
        "credit_decisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        _customer_fk(),
        sa.Column("requested_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("decision", _enum("credit_decision_kind"), nullable=False),
        _money("credit_limit", nullable=True),
        sa.Column("rate", sa.Numeric(8, 4), nullable=True),  # annual rate, percent
        sa.Column("pricing", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("reasons", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("engine_ref", sa.String(64), nullable=True),
        sa.Column("raw_response", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        *_ts(),
    )
    op.create_index("ix_credit_decisions_customer", "credit_decisions", ["customer_id", "created_at"])

    # children of customers: visible and writable exactly when their customer is
    for table in CHILD_TABLES:
        follows = f"{SCOPE_ALL} OR EXISTS (SELECT 1 FROM customers c WHERE c.id = customer_id)"
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({follows}) WITH CHECK ({follows})")
    # reminders: of orgs in scope, or addressed to the caller (a manager with scope self sees his own)
    enable_org_scope("reminders", owner_predicate="owner_user_id = (SELECT gm_user_id())")
    # feed runs: bank-wide data; scope-all users and the requester
    op.execute("ALTER TABLE feed_runs ENABLE ROW LEVEL SECURITY")
    runs = f"{SCOPE_ALL} OR requested_by = (SELECT gm_user_id())"
    op.execute(f"CREATE POLICY feed_runs_scope ON feed_runs USING ({runs}) WITH CHECK ({runs})")

    for table in ("feed_runs", "customer_accounts", "customer_loans", "customer_events", "reminders",
                  "credit_decisions"):
        grant_app(table)
        op.execute(f"GRANT USAGE ON SEQUENCE {table}_id_seq TO {app_role()}")
        audit_table(table)
    grant_app("balance_snapshots")
    audit_table("balance_snapshots", keys=("customer_id", "day"))


def downgrade() -> None:
    for table in ("credit_decisions", "reminders", "customer_events", "balance_snapshots", "customer_loans",
                  "customer_accounts", "feed_runs"):
        op.drop_table(table)
    for name in ENUMS:
        op.execute(f"DROP TYPE IF EXISTS {name}")
