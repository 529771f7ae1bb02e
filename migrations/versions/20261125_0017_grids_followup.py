"""grids follow-up: the default rating scheme also weighs the grid's customers (count and value)

The customer dimensions (`customers`, `customer_value`, `formal_share`, `customer_coverage`) are computed
from `customers` in `geo_core.grids.rating`; no table changes. The default scheme installed by 0007 is
replaced only if it is still the one 0007 installed (a bank's own edits are kept).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-25
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

OLD_DIMENSIONS = [
    {"key": "households", "weight": 0.35},
    {"key": "poi_density", "weight": 0.25},
    {"key": "outlet_distance_km", "weight": 0.25},
    {"key": "area_km2", "weight": 0.15},
]
NEW_DIMENSIONS = [
    {"key": "households", "weight": 0.2},
    {"key": "customers", "weight": 0.15},
    {"key": "customer_value", "weight": 0.2},
    {"key": "poi_density", "weight": 0.15},
    {"key": "outlet_distance_km", "weight": 0.2},
    {"key": "area_km2", "weight": 0.1},
]


def _swap(old: list, new: list) -> None:
    op.execute(sa.text("UPDATE grid_rating_schemes SET dimensions = CAST(:new AS jsonb), updated_at = now() "
                       "WHERE code = 'default' AND dimensions = CAST(:old AS jsonb)")
               .bindparams(new=json.dumps(new), old=json.dumps(old)))


def upgrade() -> None:
    _swap(OLD_DIMENSIONS, NEW_DIMENSIONS)


def downgrade() -> None:
    _swap(NEW_DIMENSIONS, OLD_DIMENSIONS)
