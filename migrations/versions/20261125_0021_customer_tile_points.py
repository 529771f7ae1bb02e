"""customer tile points: customer_points, the customers a raw-point tile may show, narrow and pre-projected

A raw-point customer tile (z >= 12, at most 20,000 points) used to read the wide `customers` rows through the GiST
index (a z14 tile over central Changsha: ~17,400 points, 1,752 shared buffers, among 2 million customers), cast four
enums to text and run ST_AsMVTGeom per point. `customer_points` holds one narrow row per customer with a location
(the layer's `where`: geom IS NOT NULL; latitudes within +-85.06, the Web Mercator range every tile lies in):

- `id`, and the columns the customers RLS policy reads: `org_id`, `owner_key` (owner_user_id, 0 for none - like
  customer_cells and customer_h3_r8);
- `mx`, `my`: the point in EPSG:3857 metres, by the same arithmetic as tiles.sql (`radians(lon) * R`,
  `ln(tan(pi/4 + radians(lat)/2)) * R`), so tile coordinates are `round(fx * mx + xoff)` - bit for bit what
  ST_AsMVTGeom computes (its affine map, then rounding half to even, then the buffer clip on rounded coordinates);
- `cx`, `cy`: the z18 tile column/row of the point counted from the south-west corner of the world
  (floor((m + H) / (2H / 262144)), ~153 m at the equator), the key of the btree `ix_customer_points_cell`: a tile
  and its 64-unit buffer are a block of cells (z14: 18 x 18, of which 16 x 16 inside), read as
  `cx = ANY(<its columns>) AND cy BETWEEN ...` - one short index range per column. At z14 this reads ~1.2x the
  tile's points (z16 cells would read ~2x: the buffer reaches into a ring of whole cells);
- the tile attributes in their tile form: `kind`, `category`, `profile_type`, `status` as text, `grid_id`.

The backfill writes the rows in (cx, cy) order, so a tile's rows sit on few pages (413 shared buffers instead of
1,752 for the z14 tile above, bench/tile_points.py); later inserts append, so the order decays with churn
(`CLUSTER customer_points USING ix_customer_points_cell` restores it, it is not required for correctness).
Tiles read from it are ~2x faster at z12-z14 (docs/PERFORMANCE.md, "Customer tile points").

Kept exact by statement-level triggers on customers with transition tables (like customer_cells in 0018): INSERT
adds the new located rows, DELETE removes the old ones, UPDATE replaces exactly the rows whose point, org, owner,
kind, category, profile type, status, grid (or id) changed; TRUNCATE empties it. The merge tombstone (status
'merged') is an ordinary UPDATE: the customers layer does not filter on status, so merged archives stay on the map
with status 'merged', as before. RLS repeats the customers SELECT predicate on the columns it reads. Derived data
written only by the SECURITY DEFINER trigger: no audit trigger, the app role may only read it. No foreign key to
customers (a merge moves the rows of every table referencing customers.id).

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-25
"""

from alembic import op

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role, statement_triggers

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

HALF = "20037508.342789244"
CELL = f"(2 * {HALF} / 262144.0)"  # z18 tile: tiles.layers.LayerSpec.POINT_CELL_ZOOM
MX = "(radians(ST_X(geom)) * 6378137.0)"
MY = "(ln(tan(pi() / 4 + radians(ST_Y(geom)) / 2)) * 6378137.0)"
COLUMNS = "id, org_id, owner_key, cx, cy, grid_id, mx, my, kind, category, profile_type, status"
# the rows a tile may show; the latitude bound also keeps ln(tan(...)) finite
LOCATED = "geom IS NOT NULL AND ST_Y(geom) BETWEEN -85.06 AND 85.06"


def _select(rows: str, extra: str = "", order: str = "") -> str:
    return f"""
    SELECT id, org_id, owner_key, floor((mx + {HALF}) / {CELL})::integer, floor((my + {HALF}) / {CELL})::integer,
           grid_id, mx, my, kind, category, profile_type, status
    FROM (SELECT id, org_id, coalesce(owner_user_id, 0) AS owner_key, grid_id, {MX} AS mx, {MY} AS my,
                 kind::text AS kind, category::text AS category, profile_type::text AS profile_type,
                 status::text AS status
          FROM {rows} r WHERE {LOCATED} {extra}) p {order}"""


# an UPDATE touches only rows whose tile inputs changed (the other version of the same id is identical)
_SAME = ("x.geom IS NOT DISTINCT FROM r.geom AND x.org_id = r.org_id AND "
         "x.owner_user_id IS NOT DISTINCT FROM r.owner_user_id AND x.kind = r.kind AND x.category = r.category AND "
         "x.profile_type IS NOT DISTINCT FROM r.profile_type AND x.status = r.status AND "
         "x.grid_id IS NOT DISTINCT FROM r.grid_id")

APPLY = f"""
CREATE FUNCTION gm_customer_points_apply() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO customer_points ({COLUMNS}) {_select("new_rows")};
  ELSIF TG_OP = 'DELETE' THEN
    DELETE FROM customer_points p USING old_rows r WHERE p.id = r.id;
  ELSE
    DELETE FROM customer_points p USING old_rows r
     WHERE p.id = r.id AND NOT EXISTS (SELECT 1 FROM new_rows x WHERE x.id = r.id AND {_SAME});
    INSERT INTO customer_points ({COLUMNS})
    {_select("new_rows", f"AND NOT EXISTS (SELECT 1 FROM old_rows x WHERE x.id = r.id AND {_SAME})")};
  END IF;
  RETURN NULL;
END $$"""


def upgrade() -> None:
    op.execute("""
        CREATE TABLE customer_points (
          id integer NOT NULL,
          org_id integer NOT NULL, owner_key integer NOT NULL,  -- owner_user_id, 0 for none
          cx integer NOT NULL, cy integer NOT NULL,  -- z18 tile column / row from the south-west
          grid_id integer,
          mx double precision NOT NULL, my double precision NOT NULL,  -- EPSG:3857 metres
          kind text NOT NULL, category text NOT NULL, profile_type text, status text NOT NULL)""")
    op.execute(APPLY)
    statement_triggers("customers", "customers_points", "gm_customer_points_apply()")
    op.execute("CREATE FUNCTION gm_customer_points_truncate() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
               "SET search_path = public AS $$ BEGIN DELETE FROM customer_points; RETURN NULL; END $$")
    statement_triggers("customers", "customers_points", "gm_customer_points_truncate()", ("TRUNCATE",))
    # backfill in index order: a tile's rows land on neighbouring pages
    op.execute("SET LOCAL jit = off")
    op.execute(f"INSERT INTO customer_points ({COLUMNS}) {_select('customers', order='ORDER BY 4, 5, 7, 8')}")
    op.execute("ALTER TABLE customer_points ADD PRIMARY KEY (id)")
    op.execute("CREATE INDEX ix_customer_points_cell ON customer_points (cx, cy)")
    # the customers policy, on the columns it reads (owner_key 0 never equals a user id)
    predicate = f"{SCOPE_ALL} OR org_id {IN_SCOPE_ORGS} OR owner_key = (SELECT gm_user_id())"
    op.execute("ALTER TABLE customer_points ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY customer_points_scope ON customer_points FOR SELECT USING ({predicate})")
    op.execute(f"GRANT SELECT ON customer_points TO {app_role()}")
    op.execute("ANALYZE customer_points")


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS customers_points_{event} ON customers")
    op.execute("DROP FUNCTION IF EXISTS gm_customer_points_apply()")
    op.execute("DROP FUNCTION IF EXISTS gm_customer_points_truncate()")
    op.execute("DROP TABLE IF EXISTS customer_points")
