"""grid customer stats: customers pre-aggregated per grid for the choropleth aggregates (/aggregates/grids)

`tiles.aggregates` sums these tables over a target grid's descendants instead of joining ~2 million customers on every
request; the answer is identical to the raw query (same grids RLS on the descendant join, same customers RLS).

1. `grid_customer_stats`: per (grid_id, org_id, owner_key, kind, category) - the grid, the columns the customers RLS
   policy reads (org_id, owner_user_id with 0 for none, like customer_cells/customer_h3_r8) and the KPI dimensions -
   the count and the exact (numeric) deposit and loan sums. The placed count (owner set) is the count of the rows
   with owner_key <> 0: owner_key is in the key, so no column is needed for it.

2. `grid_customer_visits`: visited customers per (days, bucket, grid_id, org_id, owner_key), each visit counted
   twice: in its UTC week (days = 7) and in its UTC day (days = 1); bucket = gm_visit_bucket(last_visit_at, days),
   whole periods since the epoch (a week is 7 whole days: week w = days 7w .. 7w+6). `visited_90d_share` depends
   on now(): with cutoff c = now() - 90 days, week w0 and day d0 of c, a customer counts iff its week > w0, or its
   week = w0 and its day > d0, or its day = d0 and last_visit_at >= c. So a request sums the weeks after w0 (at
   most 13 per grid), the days after d0 up to the end of w0 (at most 6) and reads only the partial day
   [c, end of d0) from raw customers through the covering index ix_customers_last_visit_at (at most one day of
   visits, ~7,000 rows at city scale): exact at any now(), with no refresh job. The raw part also tells when the
   answer can first change (tiles.aggregates caches it no longer). Measured at city scale (docs/PERFORMANCE.md):
   weekly buckets alone read up to a week of raw visits (42,000 rows), fast while the visibility map is clean
   (index-only) and +115 ms once updates have cleared it for those pages; daily buckets alone sum ~150,000 rows
   per request. Both widths: ~20,000 rows plus one day of raw visits. The day rows grow by one per grid and owner
   and day (~600,000 a year at city scale); only the last ~97 days are ever read.

3. `grid_customer_stats_versions`: per (org_id, owner_key), the sequence value of the last statement that changed
   customers of that pair. Its (count, max, sum) over the rows a caller may see is the caller's exact change
   detector for cached aggregates (it changes on any visible change, however the write was made; a late commit of
   an older sequence value still changes the sum), reading a few hundred rows instead of the stats.

Kept exact by statement-level triggers on customers (transition tables; an UPDATE moves only rows whose grid, org,
owner, kind, category, balances or last visit changed), like customer_cells (0018) and customer_h3_r8 (0019). RLS on
all three tables repeats the customers predicate on the columns it reads. Derived data written only by the SECURITY
DEFINER trigger: no audit trigger, the app role only reads.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-25
"""

from alembic import op

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role, statement_triggers

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

WIDTHS = "(VALUES (1), (7))"  # visit bucket widths in days: day and week

STATS_KEY = "grid_id, org_id, owner_key, kind, category"
STATS_COLUMNS = f"{STATS_KEY}, n, deposit_sum, loan_sum"
STATS_SELECT = ("grid_id, org_id, coalesce(owner_user_id, 0), kind, category, {sign}count(*), "
                "{sign}coalesce(sum(deposit_balance), 0), {sign}coalesce(sum(loan_balance), 0)")
VISITS_KEY = "days, bucket, grid_id, org_id, owner_key"
VISITS_SELECT = ("w.days, gm_visit_bucket(last_visit_at, w.days), grid_id, org_id, coalesce(owner_user_id, 0), "
                 "{sign}count(*)")

_DIFF = ("x.grid_id IS DISTINCT FROM r.grid_id OR x.org_id <> r.org_id OR "
         "x.owner_user_id IS DISTINCT FROM r.owner_user_id OR x.kind <> r.kind OR x.category <> r.category OR "
         "x.deposit_balance IS DISTINCT FROM r.deposit_balance OR x.loan_balance IS DISTINCT FROM r.loan_balance OR "
         "x.last_visit_at IS DISTINCT FROM r.last_visit_at")
_CHANGED_OLD = f"AND EXISTS (SELECT 1 FROM new_rows x WHERE x.id = r.id AND ({_DIFF}))"
_CHANGED_NEW = f"AND EXISTS (SELECT 1 FROM old_rows x WHERE x.id = r.id AND ({_DIFF}))"

BUCKET_FUNCTIONS = (
    "CREATE FUNCTION gm_visit_bucket(ts timestamptz, days integer) RETURNS integer LANGUAGE sql IMMUTABLE "
    "PARALLEL SAFE AS $$ SELECT floor(extract(epoch FROM ts) / (86400 * days))::integer $$",
    "CREATE FUNCTION gm_visit_bucket_end(b integer, days integer) RETURNS timestamptz LANGUAGE sql IMMUTABLE "
    "PARALLEL SAFE AS $$ SELECT to_timestamp((b + 1)::double precision * 86400 * days) $$",
)


def _delta(rows: str, sign: str, changed: str) -> str:
    """Add (sign '') or subtract (sign '-') `rows` in both aggregates and stamp their (org, owner) pairs."""
    return f"""
    INSERT INTO grid_customer_stats AS s ({STATS_COLUMNS})
    SELECT {STATS_SELECT.format(sign=sign)}
    FROM {rows} r WHERE grid_id IS NOT NULL {changed}
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT ({STATS_KEY}) DO UPDATE
      SET n = s.n + EXCLUDED.n, deposit_sum = s.deposit_sum + EXCLUDED.deposit_sum,
          loan_sum = s.loan_sum + EXCLUDED.loan_sum;
    INSERT INTO grid_customer_visits AS v ({VISITS_KEY}, n)
    SELECT {VISITS_SELECT.format(sign=sign)}
    FROM {rows} r CROSS JOIN {WIDTHS} w(days) WHERE grid_id IS NOT NULL AND last_visit_at IS NOT NULL {changed}
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT ({VISITS_KEY}) DO UPDATE SET n = v.n + EXCLUDED.n;
    INSERT INTO grid_customer_stats_versions AS w (org_id, owner_key, seq)
    SELECT DISTINCT org_id, coalesce(owner_user_id, 0), v_seq
    FROM {rows} r WHERE grid_id IS NOT NULL {changed} ORDER BY 1, 2
    ON CONFLICT (org_id, owner_key) DO UPDATE SET seq = EXCLUDED.seq;"""


def _tables() -> None:
    op.execute("""
        CREATE TABLE grid_customer_stats (
          grid_id integer NOT NULL, org_id integer NOT NULL, owner_key integer NOT NULL,  -- owner_user_id, 0 = none
          kind customer_kind NOT NULL, category customer_category NOT NULL,
          n bigint NOT NULL, deposit_sum numeric NOT NULL, loan_sum numeric NOT NULL,
          PRIMARY KEY (grid_id, org_id, owner_key, kind, category))""")
    op.execute("""
        CREATE TABLE grid_customer_visits (
          days smallint NOT NULL CHECK (days IN (1, 7)),  -- bucket width
          bucket integer NOT NULL,  -- gm_visit_bucket(last_visit_at, days)
          grid_id integer NOT NULL, org_id integer NOT NULL, owner_key integer NOT NULL,
          n bigint NOT NULL,
          PRIMARY KEY (days, bucket, grid_id, org_id, owner_key))""")
    op.execute("""
        CREATE TABLE grid_customer_stats_versions (
          org_id integer NOT NULL, owner_key integer NOT NULL, seq bigint NOT NULL,
          PRIMARY KEY (org_id, owner_key))""")
    op.execute("CREATE SEQUENCE grid_customer_stats_seq")
    for table in ("grid_customer_stats", "grid_customer_visits"):
        op.execute(f"CREATE INDEX ix_{table}_empty ON {table} (grid_id) WHERE n = 0")


def _triggers() -> None:
    op.execute(f"""
        CREATE FUNCTION gm_grid_customer_stats_apply() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = public AS $$
        DECLARE v_seq bigint := nextval('grid_customer_stats_seq');
        BEGIN
          IF TG_OP = 'INSERT' THEN {_delta("new_rows", "", "")}
          ELSIF TG_OP = 'DELETE' THEN {_delta("old_rows", "-", "")}
          ELSE {_delta("old_rows", "-", _CHANGED_OLD)} {_delta("new_rows", "", _CHANGED_NEW)}
          END IF;
          IF TG_OP <> 'INSERT' THEN
            DELETE FROM grid_customer_stats WHERE n = 0;
            DELETE FROM grid_customer_visits WHERE n = 0;
          END IF;
          RETURN NULL;
        END $$""")
    statement_triggers("customers", "customers_grid_stats", "gm_grid_customer_stats_apply()")
    op.execute("""
        CREATE FUNCTION gm_grid_customer_stats_truncate() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = public AS $$
        BEGIN
          DELETE FROM grid_customer_stats;
          DELETE FROM grid_customer_visits;
          UPDATE grid_customer_stats_versions SET seq = nextval('grid_customer_stats_seq');
          RETURN NULL;
        END $$""")
    statement_triggers("customers", "customers_grid_stats", "gm_grid_customer_stats_truncate()", ("TRUNCATE",))


def _backfill() -> None:
    """Set-based: one GROUP BY per table over customers (the same grouping as the trigger)."""
    op.execute("SET LOCAL jit = off")
    op.execute(f"""
        INSERT INTO grid_customer_stats ({STATS_COLUMNS})
        SELECT {STATS_SELECT.format(sign="")} FROM customers WHERE grid_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5""")
    op.execute(f"""
        INSERT INTO grid_customer_visits ({VISITS_KEY}, n)
        SELECT {VISITS_SELECT.format(sign="")} FROM customers CROSS JOIN {WIDTHS} w(days)
        WHERE grid_id IS NOT NULL AND last_visit_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5""")
    op.execute("""
        INSERT INTO grid_customer_stats_versions (org_id, owner_key, seq)
        SELECT p.org_id, p.owner_key, s.seq
        FROM (SELECT DISTINCT org_id, coalesce(owner_user_id, 0) AS owner_key FROM customers
              WHERE grid_id IS NOT NULL) p
        CROSS JOIN (SELECT nextval('grid_customer_stats_seq') AS seq) s""")


def upgrade() -> None:
    for statement in BUCKET_FUNCTIONS:
        op.execute(statement)
    _tables()
    _triggers()
    _backfill()
    # the customers policy, on the columns it reads (owner_key 0 never equals a user id)
    predicate = f"{SCOPE_ALL} OR org_id {IN_SCOPE_ORGS} OR owner_key = (SELECT gm_user_id())"
    for table in ("grid_customer_stats", "grid_customer_visits", "grid_customer_stats_versions"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_scope ON {table} FOR SELECT USING ({predicate})")
        op.execute(f"GRANT SELECT ON {table} TO {app_role()}")
        op.execute(f"ANALYZE {table}")
    # the partial boundary day of visited_90d_share, read from raw customers
    # (covering: RLS and the grid join read only index columns, so an index-only scan never visits the heap)
    op.execute("CREATE INDEX IF NOT EXISTS ix_customers_last_visit_at ON customers (last_visit_at) "
               "INCLUDE (grid_id, org_id, owner_user_id) WHERE last_visit_at IS NOT NULL AND grid_id IS NOT NULL")


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS customers_grid_stats_{event} ON customers")
    op.execute("DROP FUNCTION IF EXISTS gm_grid_customer_stats_apply()")
    op.execute("DROP FUNCTION IF EXISTS gm_grid_customer_stats_truncate()")
    for table in ("grid_customer_stats", "grid_customer_visits", "grid_customer_stats_versions"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP SEQUENCE IF EXISTS grid_customer_stats_seq")
    op.execute("DROP INDEX IF EXISTS ix_customers_last_visit_at")
    op.execute("DROP FUNCTION IF EXISTS gm_visit_bucket(timestamptz, integer)")
    op.execute("DROP FUNCTION IF EXISTS gm_visit_bucket_end(integer, integer)")
