"""customer merge (placeholder: filled by the work that owns it)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-25
"""

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
