"""points on the map: POIs (economic units) with H3 cell and grid; H3 cell of outlets; H3 parent in SQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op

from migrations.sql_helpers import app_role, audit_table, grant_app

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Parent of an H3 cell (64-bit integer form) at a coarser resolution: set the resolution field
# (bits 52-55) and fill the unused 3-bit digits below it with 7s, as the H3 library does.
H3_PARENT = r"""
CREATE FUNCTION gm_h3_parent(cell bigint, res integer) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT ((cell & ~(15::bigint << 52)) | (res::bigint << 52)) | ((1::bigint << (3 * (15 - res))) - 1) $$;
"""


def upgrade() -> None:
    op.execute(H3_PARENT)
    op.create_table(
        "pois",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("address", sa.String(300), nullable=True),
        sa.Column("phone", sa.String(64), nullable=True),
        sa.Column("source", sa.String(32), nullable=False, server_default="manual"),
        sa.Column("source_ref", sa.String(100), nullable=True),
        sa.Column("geom", geoalchemy2.types.Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("h3_r10", sa.BigInteger(), nullable=False),
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grids.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.UniqueConstraint("source", "source_ref", name="uq_pois_source_ref"),
    )
    op.create_index("ix_pois_geom", "pois", ["geom"], postgresql_using="gist")
    op.create_index("ix_pois_h3_r10", "pois", ["h3_r10"])
    op.create_index("ix_pois_grid_id", "pois", ["grid_id"])
    op.create_index("ix_pois_name_trgm", "pois", ["name"], postgresql_using="gin",
                    postgresql_ops={"name": "gin_trgm_ops"})
    op.add_column("orgs", sa.Column("h3_r10", sa.BigInteger(), nullable=True))
    op.create_index("ix_grid_h3_cell_res", "grid_h3", ["cell", "res"])
    grant_app("pois")
    op.execute(f"GRANT USAGE ON SEQUENCE pois_id_seq TO {app_role()}")
    audit_table("pois")


def downgrade() -> None:
    op.drop_index("ix_grid_h3_cell_res", table_name="grid_h3")
    op.drop_column("orgs", "h3_r10")
    op.drop_table("pois")
    op.execute("DROP FUNCTION IF EXISTS gm_h3_parent(bigint, integer)")
