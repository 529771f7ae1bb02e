"""geocoding: known addresses (normalised address key -> point, learnt from confirmed points and geocodes),
geocode runs (batch jobs with counts by level) and their per-customer results, and gm_division_points() (a division's representative point
from its grid or boundary, without revealing the grid); scoped and audited

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role, audit_table, enable_org_scope, grant_app

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

LEVELS = "('exact_address', 'poi', 'community', 'street', 'district', 'none')"
RUN_STATUSES = "('queued', 'running', 'done', 'failed')"


def upgrade() -> None:
    op.create_table(
        "known_addresses",
        sa.Column("id", sa.Integer(), primary_key=True),
        # canonical key built by geo_core.geocoding.parser (division codes + road/number/place/building)
        sa.Column("address_key", sa.String(300), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),  # one normalised spelling, for people
        sa.Column("geom", geoalchemy2.types.Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("h3_r10", sa.BigInteger(), nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        # corrected / gps (a manager's confirmed point) or geocoded (a provider's answer)
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(16), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_hit_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"level IN {LEVELS}", name="level_known"),
        sa.CheckConstraint("source IN ('corrected', 'gps', 'geocoded')", name="source_known"),
        sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
        sa.UniqueConstraint("org_id", "address_key", name="uq_known_addresses_org_key"),
    )
    op.create_index("ix_known_addresses_key", "known_addresses", ["address_key"])
    op.create_index("ix_known_addresses_geom", "known_addresses", ["geom"], postgresql_using="gist")

    op.create_table(
        "geocode_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("target", sa.String(16), nullable=False),  # ids | batch | missing
        sa.Column("params", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("customer_import_batches.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("requested_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False, server_default="0"),
        # customers processed so far, by matched level plus skipped / failed
        sa.Column("counts", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        # resumable: the highest customer id whose chunk has committed
        sa.Column("cursor", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"status IN {RUN_STATUSES}", name="status_known"),
        sa.CheckConstraint("target IN ('ids', 'batch', 'missing')", name="target_known"),
    )
    op.create_index("ix_geocode_runs_requested_by", "geocode_runs", ["requested_by"])
    op.create_index("ix_geocode_runs_org", "geocode_runs", ["org_id"])
    op.create_index("ix_geocode_runs_created_at", "geocode_runs", ["created_at"])

    # what each run found for each customer it geocoded (for review: low-confidence answers to correct on the map)
    op.create_table(
        "geocode_results",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("geocode_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("matched", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"level IN {LEVELS}", name="level_known"),
    )
    op.create_index("ix_geocode_results_customer", "geocode_results", ["customer_id"])
    # the gazetteer finds POIs by "road + number" inside their address (LIKE '%…%': a trigram index serves it)
    op.execute("CREATE INDEX IF NOT EXISTS ix_pois_address_trgm ON pois USING gin (address gin_trgm_ops)")

    enable_org_scope("known_addresses")
    run_scope = f"{SCOPE_ALL} OR org_id {IN_SCOPE_ORGS} OR requested_by = (SELECT gm_user_id())"
    op.execute("ALTER TABLE geocode_runs ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY geocode_runs_scope ON geocode_runs USING ({run_scope}) WITH CHECK ({run_scope})")
    # results follow their customer (the customers policy: org in scope or managed by the caller)
    follows = f"{SCOPE_ALL} OR EXISTS (SELECT 1 FROM customers c WHERE c.id = customer_id)"
    op.execute("ALTER TABLE geocode_results ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY geocode_results_scope ON geocode_results USING ({follows}) WITH CHECK ({follows})")
    for table in ("known_addresses", "geocode_runs"):
        grant_app(table)
        op.execute(f"GRANT USAGE ON SEQUENCE {table}_id_seq TO {app_role()}")
    grant_app("geocode_results")
    audit_table("known_addresses")
    audit_table("geocode_runs")
    audit_table("geocode_results", keys=("run_id", "customer_id"))

    # A division's representative point: on the surface of its active physical grid (the grids carry township
    # and community shapes), else of its own boundary. Only a point comes back, never the grid, so callers of
    # any scope may place an address at street / community level.
    op.execute("""
        CREATE FUNCTION gm_division_points(p_codes text[])
        RETURNS TABLE (code text, lon double precision, lat double precision, source text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
          SELECT c.code, ST_X(p.pt), ST_Y(p.pt), p.source
          FROM unnest(p_codes) AS c(code)
          CROSS JOIN LATERAL (
            SELECT x.pt, x.source FROM (
              (SELECT ST_PointOnSurface(g.geom) AS pt, 'grid'::text AS source, 0 AS rank
               FROM grids g WHERE g.division_code = c.code AND g.kind = 'physical' AND g.status = 'active'
                 AND g.geom IS NOT NULL ORDER BY nlevel(g.path), g.area_m2 DESC LIMIT 1)
              UNION ALL
              (SELECT ST_PointOnSurface(d.geom), 'division', 1 FROM admin_divisions d
               WHERE d.code = c.code AND d.geom IS NOT NULL)
            ) x ORDER BY x.rank LIMIT 1
          ) p $$""")
    op.execute(f"GRANT EXECUTE ON FUNCTION gm_division_points(text[]) TO {app_role()}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS gm_division_points(text[])")
    op.execute("DROP INDEX IF EXISTS ix_pois_address_trgm")
    op.drop_table("geocode_results")
    op.drop_table("geocode_runs")
    op.drop_table("known_addresses")
