"""grid rating (网格评级): configurable weighted schemes and rating history; assigned staff see their grids

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql_helpers import app_role, audit_table, grant_app

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DEFAULT_DIMENSIONS = [
    {"key": "households", "weight": 0.35},
    {"key": "poi_density", "weight": 0.25},
    {"key": "outlet_distance_km", "weight": 0.25},
    {"key": "area_km2", "weight": 0.15},
]
DEFAULT_THRESHOLDS = {"A": 75, "B": 60, "C": 45}


# A user holding a current post on a grid (网格长, 客户经理, 协管员 with a login) may READ that grid and its
# descendants even when his data scope (e.g. `self`) would not show them: 「我的网格」. Writes still
# need the org scope. The lookup is a SECURITY DEFINER function so the two policies do not recurse.
ASSIGNED_GRIDS = r"""
CREATE FUNCTION gm_assigned_grid_paths() RETURNS ltree[] LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public AS
$$ SELECT coalesce(array_agg(g.path), '{}') FROM grid_assignments a JOIN grids g ON g.id = a.grid_id
   WHERE a.user_id = gm_user_id() AND a.valid_to IS NULL $$;
CREATE POLICY grids_assigned ON grids FOR SELECT
  USING (path <@ ((SELECT gm_assigned_grid_paths())::ltree[]));
"""


def upgrade() -> None:
    op.execute(ASSIGNED_GRIDS)
    op.execute(f"GRANT EXECUTE ON FUNCTION gm_assigned_grid_paths() TO {app_role()}")
    op.create_table(
        "grid_rating_schemes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default="true"),
        sa.Column("dimensions", postgresql.JSONB(), nullable=False),
        sa.Column("grade_thresholds", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_table(
        "grid_ratings",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grids.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scheme_id", sa.Integer(), sa.ForeignKey("grid_rating_schemes.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("components", postgresql.JSONB(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("grade IN ('A', 'B', 'C', 'D')", name="grade_letter"),
    )
    op.create_index("ix_grid_ratings_grid_time", "grid_ratings", ["grid_id", sa.text("computed_at DESC")])
    op.execute("ALTER TABLE grid_ratings ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY grid_ratings_scope ON grid_ratings USING ((SELECT gm_scope_all()) OR "
               "grid_id IN (SELECT id FROM grids))")
    grant_app("grid_rating_schemes")
    grant_app("grid_ratings")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {app_role()}")
    audit_table("grid_rating_schemes")
    audit_table("grid_ratings")
    op.execute(
        sa.text("INSERT INTO grid_rating_schemes (code, name, dimensions, grade_thresholds) "
                "VALUES ('default', '默认评级方案', CAST(:d AS jsonb), CAST(:t AS jsonb))").bindparams(
            d=json.dumps(DEFAULT_DIMENSIONS), t=json.dumps(DEFAULT_THRESHOLDS))
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS grids_assigned ON grids")
    op.execute("DROP FUNCTION IF EXISTS gm_assigned_grid_paths()")
    op.drop_table("grid_ratings")
    op.drop_table("grid_rating_schemes")
