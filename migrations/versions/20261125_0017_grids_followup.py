"""grids followup (placeholder: filled by the work that owns it)

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-25
"""

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
