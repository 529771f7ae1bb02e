"""heatmap cells (customer_h3_r8) and the one-statement principal loader (gm_auth_principal)

1. `gm_auth_principal(user_id, session_id, request_id, client_ip, settings)`: the user, session, device status, role
   scopes and permission codes behind an access token in one statement (SECURITY DEFINER: no system context needed),
   and - only for a valid session - the transaction-local data-scope context plus whitelisted extra settings
   (statement_timeout, jit). geo_core.auth.fast re-checks every rule in Python and compares the context it set.

2. `customer_h3_r8`: customers pre-aggregated per H3 resolution-8 cell (the parent of `h3_r10`) and per
   (org_id, owner_key, kind, category) - the columns the customers RLS policy and the cheap heatmap filters read -
   with the count, the exact (numeric) deposit and loan sums and the bounding box of the members (lon0..lat1,
   WGS84). tiles.heatmap_cells answers /heatmaps/customers from it for res <= 8: rows whose box lies inside the
   request bbox count whole; cells with a row crossing the bbox edge are counted from their points (so the result is
   identical to grouping the points). The box only grows (a delete keeps it): still a superset of the members.

Kept exact by statement-level triggers on customers (transition tables, like customer_cells in 0018); RLS repeats the
customers predicate. Derived data written only by the SECURITY DEFINER trigger: no audit trigger, app role reads.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-25
"""

from alembic import op

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

AUTH_FUNCTION = r"""
CREATE FUNCTION gm_auth_principal(p_user_id integer, p_session_id uuid, p_request_id text, p_client_ip text,
                                  p_settings text[] DEFAULT '{}')
RETURNS TABLE (username text, name text, org_id integer, org_path text, user_status text, revoked boolean,
               expires_at timestamptz, client text, device_status text, scopes text[], permissions text[],
               applied text[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public AS $$
#variable_conflict use_column
DECLARE
  r record;
  v_all boolean;
  v_lq text;
  i integer;
BEGIN
  SELECT u.username::text AS username, u.name::text AS name, u.org_id AS org_id, o.path::text AS org_path,
         u.status::text AS user_status, s.revoked_at IS NOT NULL AS revoked, s.expires_at AS expires_at,
         s.client::text AS client,
         (SELECT d.status::text FROM devices d WHERE d.device_id = s.device_id AND d.user_id = u.id) AS device_status,
         ARRAY(SELECT DISTINCT ro.data_scope::text FROM user_roles ur JOIN roles ro ON ro.id = ur.role_id
               WHERE ur.user_id = u.id) AS scopes,
         ARRAY(SELECT DISTINCT pe.code::text FROM user_roles ur JOIN role_permissions rp ON rp.role_id = ur.role_id
               JOIN permissions pe ON pe.id = rp.permission_id WHERE ur.user_id = u.id) AS permissions
    INTO r
    FROM users u JOIN orgs o ON o.id = u.org_id JOIN auth_sessions s ON s.user_id = u.id
   WHERE u.id = p_user_id AND s.id = p_session_id;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  applied := NULL;
  IF r.user_status = 'active' AND NOT r.revoked AND r.expires_at > clock_timestamp()
     AND (r.client <> 'mobile' OR r.device_status = 'active') THEN
    v_all := 'all' = ANY (r.scopes);
    v_lq := CASE WHEN v_all THEN '{}'
                 WHEN 'org_subtree' = ANY (r.scopes) THEN '{' || r.org_path || '.*}'
                 WHEN 'org' = ANY (r.scopes) THEN '{' || r.org_path || '}'
                 ELSE '{}' END;
    applied := ARRAY[set_config('gm.user_id', p_user_id::text, true), set_config('gm.org_id', r.org_id::text, true),
                     set_config('gm.scope', CASE WHEN v_all THEN 'all' ELSE 'lqueries' END, true),
                     set_config('gm.lqueries', v_lq, true),
                     set_config('gm.request_id', coalesce(p_request_id, ''), true),
                     set_config('gm.client_ip', coalesce(p_client_ip, ''), true)];
    FOR i IN 1 .. coalesce(array_length(p_settings, 1), 0) / 2 LOOP
      IF p_settings[2 * i - 1] NOT IN ('statement_timeout', 'jit') THEN
        RAISE EXCEPTION 'setting not allowed: %', p_settings[2 * i - 1];
      END IF;
      applied := applied || set_config(p_settings[2 * i - 1], p_settings[2 * i], true);
    END LOOP;
  END IF;
  username := r.username; name := r.name; org_id := r.org_id; org_path := r.org_path;
  user_status := r.user_status; revoked := r.revoked; expires_at := r.expires_at; client := r.client;
  device_status := r.device_status; scopes := r.scopes; permissions := r.permissions;
  RETURN NEXT;
END $$"""
AUTH_SIGNATURE = "gm_auth_principal(integer, uuid, text, text, text[])"

KEY = "h3_r8, org_id, owner_key, kind, category"
_SELECT = """gm_h3_parent(h3_r10, 8), org_id, coalesce(owner_user_id, 0), kind, category, {sign}count(*),
           {sign}coalesce(sum(deposit_balance), 0), {sign}coalesce(sum(loan_balance), 0),
           min(ST_X(geom)), min(ST_Y(geom)), max(ST_X(geom)), max(ST_Y(geom))"""
_COLUMNS = f"{KEY}, n, deposit_sum, loan_sum, lon0, lat0, lon1, lat1"


def _delta(rows: str, sign: str, changed: str) -> str:
    return f"""
    INSERT INTO customer_h3_r8 AS c ({_COLUMNS})
    SELECT {_SELECT.format(sign=sign)}
    FROM {rows} r WHERE h3_r10 IS NOT NULL AND geom IS NOT NULL {changed}
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT ({KEY}) DO UPDATE
      SET n = c.n + EXCLUDED.n, deposit_sum = c.deposit_sum + EXCLUDED.deposit_sum,
          loan_sum = c.loan_sum + EXCLUDED.loan_sum, lon0 = least(c.lon0, EXCLUDED.lon0),
          lat0 = least(c.lat0, EXCLUDED.lat0), lon1 = greatest(c.lon1, EXCLUDED.lon1),
          lat1 = greatest(c.lat1, EXCLUDED.lat1);"""


_DIFF = ("x.geom IS DISTINCT FROM r.geom OR x.h3_r10 IS DISTINCT FROM r.h3_r10 OR x.org_id <> r.org_id OR "
         "x.owner_user_id IS DISTINCT FROM r.owner_user_id OR x.kind <> r.kind OR x.category <> r.category OR "
         "x.deposit_balance IS DISTINCT FROM r.deposit_balance OR x.loan_balance IS DISTINCT FROM r.loan_balance")
_CHANGED_OLD = f"AND EXISTS (SELECT 1 FROM new_rows x WHERE x.id = r.id AND ({_DIFF}))"
_CHANGED_NEW = f"AND EXISTS (SELECT 1 FROM old_rows x WHERE x.id = r.id AND ({_DIFF}))"


def _heatmap_cells() -> None:
    op.execute("""
        CREATE TABLE customer_h3_r8 (
          h3_r8 bigint NOT NULL, org_id integer NOT NULL, owner_key integer NOT NULL,  -- owner_user_id, 0 = none
          kind customer_kind NOT NULL, category customer_category NOT NULL,
          n bigint NOT NULL, deposit_sum numeric NOT NULL, loan_sum numeric NOT NULL,
          lon0 double precision NOT NULL, lat0 double precision NOT NULL,
          lon1 double precision NOT NULL, lat1 double precision NOT NULL,
          PRIMARY KEY (h3_r8, org_id, owner_key, kind, category))""")
    op.execute(f"""
        CREATE FUNCTION gm_customer_h3_r8_apply() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = public AS $$
        BEGIN
          IF TG_OP = 'INSERT' THEN {_delta("new_rows", "", "")}
          ELSIF TG_OP = 'DELETE' THEN {_delta("old_rows", "-", "")}
          ELSE {_delta("old_rows", "-", _CHANGED_OLD)} {_delta("new_rows", "", _CHANGED_NEW)}
          END IF;
          IF TG_OP <> 'INSERT' THEN
            DELETE FROM customer_h3_r8 WHERE n = 0;
          END IF;
          RETURN NULL;
        END $$""")
    for event, refs in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                        ("DELETE", "OLD TABLE AS old_rows")):
        op.execute(f"CREATE TRIGGER customers_h3_r8_{event.lower()} AFTER {event} ON customers "
                   f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION gm_customer_h3_r8_apply()")
    op.execute("CREATE FUNCTION gm_customer_h3_r8_truncate() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
               "SET search_path = public AS $$ BEGIN DELETE FROM customer_h3_r8; RETURN NULL; END $$")
    op.execute("CREATE TRIGGER customers_h3_r8_truncate AFTER TRUNCATE ON customers "
               "FOR EACH STATEMENT EXECUTE FUNCTION gm_customer_h3_r8_truncate()")
    # set-based backfill: one GROUP BY over customers (the same grouping as the trigger)
    op.execute("SET LOCAL jit = off")
    op.execute(f"""
        INSERT INTO customer_h3_r8 ({_COLUMNS})
        SELECT {_SELECT.format(sign="")}
        FROM customers WHERE h3_r10 IS NOT NULL AND geom IS NOT NULL GROUP BY 1, 2, 3, 4, 5""")
    # the customers policy, on the columns it reads (owner_key 0 never equals a user id)
    predicate = f"{SCOPE_ALL} OR org_id {IN_SCOPE_ORGS} OR owner_key = (SELECT gm_user_id())"
    op.execute("ALTER TABLE customer_h3_r8 ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY customer_h3_r8_scope ON customer_h3_r8 FOR SELECT USING ({predicate})")
    op.execute(f"GRANT SELECT ON customer_h3_r8 TO {app_role()}")
    op.execute("ANALYZE customer_h3_r8")


def upgrade() -> None:
    op.execute(AUTH_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {AUTH_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {AUTH_SIGNATURE} TO {app_role()}")
    _heatmap_cells()


def downgrade() -> None:
    for event in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS customers_h3_r8_{event} ON customers")
    op.execute("DROP FUNCTION IF EXISTS gm_customer_h3_r8_apply()")
    op.execute("DROP FUNCTION IF EXISTS gm_customer_h3_r8_truncate()")
    op.execute("DROP TABLE IF EXISTS customer_h3_r8")
    op.execute(f"DROP FUNCTION IF EXISTS {AUTH_SIGNATURE}")
