"""tiles aggregates: customer_cells, customers pre-aggregated on the z11 cluster grid for low-zoom tiles

A clustered customer tile (z < 12) groups points into 32 x 32 cells per tile. Those cells nest: a cell at zoom z is
the union of 2^(11-z) x 2^(11-z) cells at zoom 11. `customer_cells` holds, per z11 cell (ix, iy: Web Mercator,
counted from the south-west corner of the world) and per (org_id, owner_user_id) - exactly the columns the customers
RLS policy reads - the number of customers, of formal customers, and the sums of their Web Mercator x and y. So a
z10 tile over central Changsha sums a few thousand rows instead of clustering 680,000 points, with the same counts
and the same cluster positions (mean of the members = sum / n) as clustering the points themselves.

Kept exact by statement-level triggers on customers (transition tables; only rows whose geometry, org, owner or
category changed move); RLS on customer_cells repeats the customers predicate, so every caller sees the sums of
exactly the customers he may see. Derived data written only by the (SECURITY DEFINER) trigger: no audit trigger,
the app role may only read it.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-25
"""

from alembic import op

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

HALF = "20037508.342789244"
CELL = f"(2 * {HALF} / 65536.0)"  # z11 cluster cell: 2^11 tiles x 32 cells per axis
MX = "(radians(ST_X(geom)) * 6378137.0)"
MY = "(ln(tan(pi() / 4 + radians(ST_Y(geom)) / 2)) * 6378137.0)"


def _delta(rows: str, sign: str, changed: str) -> str:
    return f"""
    INSERT INTO customer_cells AS c (ix, iy, org_id, owner_key, n, n_formal, sx, sy)
    SELECT floor(({MX} + {HALF}) / {CELL})::integer, floor(({MY} + {HALF}) / {CELL})::integer, org_id,
           coalesce(owner_user_id, 0), {sign}count(*), {sign}count(*) FILTER (WHERE category = 'formal'),
           {sign}sum({MX}), {sign}sum({MY})
    FROM {rows} r WHERE geom IS NOT NULL AND abs(ST_Y(geom)) < 85.05 {changed}
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (ix, iy, org_id, owner_key) DO UPDATE
      SET n = c.n + EXCLUDED.n, n_formal = c.n_formal + EXCLUDED.n_formal, sx = c.sx + EXCLUDED.sx,
          sy = c.sy + EXCLUDED.sy;"""


# an UPDATE moves only rows whose clustering inputs changed
_CHANGED_OLD = ("AND EXISTS (SELECT 1 FROM new_rows x WHERE x.id = r.id AND (x.geom IS DISTINCT FROM r.geom OR "
                "x.org_id <> r.org_id OR x.owner_user_id IS DISTINCT FROM r.owner_user_id OR "
                "x.category <> r.category))")
_CHANGED_NEW = ("AND EXISTS (SELECT 1 FROM old_rows x WHERE x.id = r.id AND (x.geom IS DISTINCT FROM r.geom OR "
                "x.org_id <> r.org_id OR x.owner_user_id IS DISTINCT FROM r.owner_user_id OR "
                "x.category <> r.category))")


def upgrade() -> None:
    op.execute("""
        CREATE TABLE customer_cells (
          ix integer NOT NULL, iy integer NOT NULL,
          org_id integer NOT NULL, owner_key integer NOT NULL,  -- owner_user_id, 0 for none
          n bigint NOT NULL, n_formal bigint NOT NULL, sx double precision NOT NULL, sy double precision NOT NULL,
          PRIMARY KEY (ix, iy, org_id, owner_key))""")
    op.execute("CREATE INDEX ix_customer_cells_empty ON customer_cells (ix) WHERE n = 0")
    op.execute(f"""
        CREATE FUNCTION gm_customer_cells_apply() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = public AS $$
        BEGIN
          IF TG_OP = 'INSERT' THEN {_delta("new_rows", "", "")}
          ELSIF TG_OP = 'DELETE' THEN {_delta("old_rows", "-", "")}
          ELSE {_delta("old_rows", "-", _CHANGED_OLD)} {_delta("new_rows", "", _CHANGED_NEW)}
          END IF;
          IF TG_OP <> 'INSERT' THEN
            DELETE FROM customer_cells WHERE n = 0;
          END IF;
          RETURN NULL;
        END $$""")
    for event, refs in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                        ("DELETE", "OLD TABLE AS old_rows")):
        op.execute(f"CREATE TRIGGER customers_cells_{event.lower()} AFTER {event} ON customers REFERENCING {refs} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION gm_customer_cells_apply()")
    op.execute("CREATE FUNCTION gm_customer_cells_truncate() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
               "SET search_path = public AS $$ BEGIN DELETE FROM customer_cells; RETURN NULL; END $$")
    op.execute("CREATE TRIGGER customers_cells_truncate AFTER TRUNCATE ON customers "
               "FOR EACH STATEMENT EXECUTE FUNCTION gm_customer_cells_truncate()")
    # backfill (the same grouping as the trigger)
    op.execute(f"""
        INSERT INTO customer_cells (ix, iy, org_id, owner_key, n, n_formal, sx, sy)
        SELECT floor(({MX} + {HALF}) / {CELL})::integer, floor(({MY} + {HALF}) / {CELL})::integer, org_id,
               coalesce(owner_user_id, 0), count(*), count(*) FILTER (WHERE category = 'formal'), sum({MX}), sum({MY})
        FROM customers WHERE geom IS NOT NULL AND abs(ST_Y(geom)) < 85.05 GROUP BY 1, 2, 3, 4""")
    # the customers policy, on the columns it reads (owner_key 0 never equals a user id)
    predicate = f"{SCOPE_ALL} OR org_id {IN_SCOPE_ORGS} OR owner_key = (SELECT gm_user_id())"
    op.execute("ALTER TABLE customer_cells ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY customer_cells_scope ON customer_cells FOR SELECT USING ({predicate})")
    op.execute(f"GRANT SELECT ON customer_cells TO {app_role()}")
    op.execute("ANALYZE customer_cells")
    # the tile cache's change detector reads max(updated_at) of the visible customers (tiles.layers fingerprint)
    op.execute("CREATE INDEX IF NOT EXISTS ix_customers_updated_at ON customers (updated_at)")


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS customers_cells_{event} ON customers")
    op.execute("DROP FUNCTION IF EXISTS gm_customer_cells_apply()")
    op.execute("DROP FUNCTION IF EXISTS gm_customer_cells_truncate()")
    op.execute("DROP TABLE IF EXISTS customer_cells")
    op.execute("DROP INDEX IF EXISTS ix_customers_updated_at")
