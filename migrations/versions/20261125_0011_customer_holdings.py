"""customer holdings summary (from the big-data platform's daily feed): deposit and loan balances,
credit limit, overdue amount, products held, as-of date, last visit; read by rule tags, coverage
indicators, reminders, heatmap sums and the 360 view

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = (
    ("deposit_balance", sa.Numeric(18, 2)),  # sum of deposit balances, yuan; NULL = unknown
    ("loan_balance", sa.Numeric(18, 2)),  # outstanding loans, yuan
    ("credit_limit", sa.Numeric(18, 2)),  # granted credit line (授信额度); NULL = none
    ("overdue_amount", sa.Numeric(18, 2)),  # overdue principal + interest
    ("products", postgresql.ARRAY(sa.String(32))),  # product codes held
    ("holdings_as_of", sa.Date()),  # snapshot date the figures come from
    ("last_visit_at", sa.DateTime(timezone=True)),  # last field visit (field work)
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("customers", sa.Column(name, type_, nullable=True))
    op.execute("CREATE INDEX ix_customers_deposit_balance ON customers (deposit_balance) "
               "WHERE deposit_balance IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_customers_deposit_balance")
    for name, _ in reversed(COLUMNS):
        op.drop_column("customers", name)
