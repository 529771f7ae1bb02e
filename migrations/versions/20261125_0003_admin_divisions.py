"""administrative divisions (city, districts, townships, villages) as reference data

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op

from migrations.sql_helpers import grant_app

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_divisions",
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("short_name", sa.String(length=100), nullable=True),
        sa.Column("name_en", sa.String(length=100), nullable=True),
        sa.Column(
            "level",
            sa.Enum("city", "district", "township", "village", name="division_level"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("parent_code", sa.String(length=12), nullable=True),
        sa.Column("area_km2", sa.Float(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(geometry_type="MULTIPOLYGON", srid=4326, spatial_index=False),
            nullable=True,
        ),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_admin_divisions")),
    )
    op.create_index("ix_admin_divisions_geom", "admin_divisions", ["geom"], postgresql_using="gist")
    op.create_index("ix_admin_divisions_parent", "admin_divisions", ["parent_code"])
    op.create_index("ix_admin_divisions_level", "admin_divisions", ["level"])
    op.create_index(
        "ix_admin_divisions_name_trgm",
        "admin_divisions",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    grant_app("admin_divisions", "SELECT")


def downgrade() -> None:
    op.drop_table("admin_divisions")
    op.execute("DROP TYPE IF EXISTS division_level")
