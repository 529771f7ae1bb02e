"""user_grants: each user's data scopes and permission codes, kept exact by triggers, read by gm_auth_principal

`gm_auth_principal()` (0019) runs on every authenticated request. Two of its sub-queries rebuilt, per request, the
user's role scopes and the DISTINCT permission codes over user_roles x role_permissions x permissions (58 codes for
an administrator). Those arrays change only when roles change, so they are stored per user; measured with
`bench/auth_roundtrips.py --server-time 3000` on the city-scale DB (one call incl. its loopback round trip, median of
10 alternating blocks, while a test suite ran): admin 236.5 -> 187.7 us, an account manager 223.3 -> 186.0 us.

- `user_grants(user_id, scopes, permissions)`: sorted text arrays, one row per user holding at least one role;
- statement-level triggers with transition tables recompute the rows of exactly the users a change can affect, in
  the same transaction: user_roles (insert/update/delete), role_permissions (the holders of the roles touched),
  roles (data_scope or code changed; deleted roles cascade through user_roles), permissions (code renamed or
  deleted); TRUNCATE of any of them rebuilds the table. Revocation therefore still acts on the next request;
- a user without a row (no role at all, or a row missing for any reason) is computed live by the function, as
  before: the table is an accelerator, never the authority for "no grant".

Derived data written only by SECURITY DEFINER functions; the app role gets no privilege on it (only the
SECURITY DEFINER gm_auth_principal reads it); no audit trigger (the audited tables are the role tables).

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-25
"""

from alembic import op

from migrations.sql_helpers import app_role, statement_triggers

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

AUTH_SIGNATURE = "gm_auth_principal(integer, uuid, text, text, text[])"

LIVE_SCOPES = """ARRAY(SELECT DISTINCT ro.data_scope::text FROM user_roles ur JOIN roles ro ON ro.id = ur.role_id
                 WHERE ur.user_id = {user} ORDER BY 1)"""
LIVE_PERMISSIONS = """ARRAY(SELECT DISTINCT pe.code::text FROM user_roles ur
                 JOIN role_permissions rp ON rp.role_id = ur.role_id JOIN permissions pe ON pe.id = rp.permission_id
                 WHERE ur.user_id = {user} ORDER BY 1)"""

REFRESH = f"""
CREATE FUNCTION gm_user_grants_refresh(p_users integer[]) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  DELETE FROM user_grants g WHERE g.user_id = ANY (p_users)
     AND NOT EXISTS (SELECT 1 FROM user_roles ur WHERE ur.user_id = g.user_id);
  INSERT INTO user_grants (user_id, scopes, permissions)
  SELECT u.user_id, {LIVE_SCOPES.format(user="u.user_id")}, {LIVE_PERMISSIONS.format(user="u.user_id")}
    FROM (SELECT DISTINCT ur.user_id FROM user_roles ur WHERE ur.user_id = ANY (p_users)) u
  ON CONFLICT (user_id) DO UPDATE SET scopes = EXCLUDED.scopes, permissions = EXCLUDED.permissions;
$$;

CREATE FUNCTION gm_user_grants_rebuild() RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
  DELETE FROM user_grants;
  SELECT gm_user_grants_refresh(ARRAY(SELECT DISTINCT user_id FROM user_roles));
$$;
"""

# one trigger function per source table and event shape; each names the users a change can affect
TRIGGER_FUNCTIONS = {
    "user_roles": "SELECT DISTINCT user_id FROM changed",
    "role_permissions": "SELECT DISTINCT ur.user_id FROM user_roles ur WHERE ur.role_id IN (SELECT role_id FROM changed)",
    "roles": "SELECT DISTINCT ur.user_id FROM user_roles ur WHERE ur.role_id IN (SELECT id FROM changed)",
    "permissions": """SELECT DISTINCT ur.user_id FROM user_roles ur JOIN role_permissions rp ON rp.role_id = ur.role_id
                      WHERE rp.permission_id IN (SELECT id FROM changed)""",
}


def _trigger_function(table: str, users: str) -> str:
    return f"""
CREATE FUNCTION gm_user_grants_on_{table}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM gm_user_grants_rebuild();
  ELSIF TG_OP = 'INSERT' THEN
    PERFORM gm_user_grants_refresh(ARRAY(WITH changed AS (SELECT * FROM new_rows) {users}));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM gm_user_grants_refresh(ARRAY(WITH changed AS (SELECT * FROM old_rows) {users}));
  ELSE
    PERFORM gm_user_grants_refresh(ARRAY(WITH changed AS (SELECT * FROM old_rows UNION ALL SELECT * FROM new_rows)
                                         {users}));
  END IF;
  RETURN NULL;
END $$"""


def _triggers(table: str) -> None:
    # a new role or permission has no holders yet: no INSERT trigger on those two
    events = ("UPDATE", "DELETE") if table in ("roles", "permissions") else ("INSERT", "UPDATE", "DELETE")
    statement_triggers(table, f"{table}_grants", f"gm_user_grants_on_{table}()", (*events, "TRUNCATE"))


def _auth_function(scopes: str, permissions: str, grants_join: str) -> str:
    """gm_auth_principal as in 0019; only the scopes/permissions expressions and one join differ."""
    return rf"""
CREATE OR REPLACE FUNCTION gm_auth_principal(p_user_id integer, p_session_id uuid, p_request_id text,
                                             p_client_ip text, p_settings text[] DEFAULT '{{}}')
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
         {scopes} AS scopes,
         {permissions} AS permissions
    INTO r
    FROM users u JOIN orgs o ON o.id = u.org_id JOIN auth_sessions s ON s.user_id = u.id{grants_join}
   WHERE u.id = p_user_id AND s.id = p_session_id;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  applied := NULL;
  IF r.user_status = 'active' AND NOT r.revoked AND r.expires_at > clock_timestamp()
     AND (r.client <> 'mobile' OR r.device_status = 'active') THEN
    v_all := 'all' = ANY (r.scopes);
    v_lq := CASE WHEN v_all THEN '{{}}'
                 WHEN 'org_subtree' = ANY (r.scopes) THEN '{{' || r.org_path || '.*}}'
                 WHEN 'org' = ANY (r.scopes) THEN '{{' || r.org_path || '}}'
                 ELSE '{{}}' END;
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


def _grant_auth() -> None:
    op.execute(f"REVOKE ALL ON FUNCTION {AUTH_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {AUTH_SIGNATURE} TO {app_role()}")


def upgrade() -> None:
    op.execute("""
        CREATE TABLE user_grants (
          user_id integer PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
          scopes text[] NOT NULL,
          permissions text[] NOT NULL
        )""")
    op.execute(f"REVOKE ALL ON user_grants FROM PUBLIC, {app_role()}")
    op.execute(REFRESH)
    for fn in ("gm_user_grants_refresh(integer[])", "gm_user_grants_rebuild()"):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
    for table, users in TRIGGER_FUNCTIONS.items():
        op.execute(_trigger_function(table, users))
        op.execute(f"REVOKE ALL ON FUNCTION gm_user_grants_on_{table}() FROM PUBLIC")
        _triggers(table)
    op.execute("SELECT gm_user_grants_rebuild()")
    op.execute(_auth_function(
        f"coalesce(g.scopes, {LIVE_SCOPES.format(user='u.id')})",
        f"coalesce(g.permissions, {LIVE_PERMISSIONS.format(user='u.id')})",
        " LEFT JOIN user_grants g ON g.user_id = u.id"))
    _grant_auth()


def downgrade() -> None:
    op.execute(_auth_function(LIVE_SCOPES.format(user="u.id"), LIVE_PERMISSIONS.format(user="u.id"), ""))
    _grant_auth()
    for table in TRIGGER_FUNCTIONS:
        for event in ("truncate", "insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_grants_{event} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS gm_user_grants_on_{table}()")
    op.execute("DROP FUNCTION IF EXISTS gm_user_grants_rebuild()")
    op.execute("DROP FUNCTION IF EXISTS gm_user_grants_refresh(integer[])")
    op.execute("DROP TABLE IF EXISTS user_grants")
