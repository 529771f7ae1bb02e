"""watch items (我的关注 / 自由标注): a user's own markers and followed objects on the map

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role, audit_table, grant_app

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watch_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("target_type", sa.String(16), nullable=True),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("geom", geoalchemy2.types.Geometry("POINT", srid=4326, spatial_index=False), nullable=True),
        sa.Column("h3_r10", sa.BigInteger(), nullable=True),
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grids.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("target_type IS NULL OR target_type IN ('grid', 'poi', 'org')", name="target_type"),
        sa.CheckConstraint("(target_type IS NULL) = (target_id IS NULL)", name="target_pair"),
        sa.CheckConstraint("geom IS NOT NULL OR target_type IS NOT NULL", name="located_or_target"),
    )
    op.create_index("ix_watch_items_user", "watch_items", ["user_id"])
    op.create_index("ix_watch_items_geom", "watch_items", ["geom"], postgresql_using="gist")
    op.create_index("ix_watch_items_grid", "watch_items", ["grid_id"])
    # leaders see their team's items (org scope); only the owner (or scope all) may write them
    op.execute("ALTER TABLE watch_items ENABLE ROW LEVEL SECURITY")
    own = "user_id = (SELECT gm_user_id())"
    op.execute(f"CREATE POLICY watch_items_read ON watch_items FOR SELECT USING ({SCOPE_ALL} OR {own} "
               f"OR org_id {IN_SCOPE_ORGS})")
    op.execute(f"CREATE POLICY watch_items_insert ON watch_items FOR INSERT WITH CHECK ({SCOPE_ALL} OR {own})")
    op.execute(f"CREATE POLICY watch_items_update ON watch_items FOR UPDATE USING ({SCOPE_ALL} OR {own}) "
               f"WITH CHECK ({SCOPE_ALL} OR {own})")
    op.execute(f"CREATE POLICY watch_items_delete ON watch_items FOR DELETE USING ({SCOPE_ALL} OR {own})")
    grant_app("watch_items")
    op.execute(f"GRANT USAGE ON SEQUENCE watch_items_id_seq TO {app_role()}")
    audit_table("watch_items")


def downgrade() -> None:
    op.drop_table("watch_items")
