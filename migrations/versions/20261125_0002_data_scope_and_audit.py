"""data scope (row-level security) and audit triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role, audit_table, enable_org_scope, grant_app

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FUNCTIONS = r"""
CREATE FUNCTION gm_user_id() RETURNS integer LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT nullif(current_setting('gm.user_id', true), '')::integer $$;

CREATE FUNCTION gm_org_id() RETURNS integer LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT nullif(current_setting('gm.org_id', true), '')::integer $$;

CREATE FUNCTION gm_scope_all() RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT coalesce(current_setting('gm.scope', true) = 'all', false) $$;

CREATE FUNCTION gm_scope_lqueries() RETURNS lquery[] LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT coalesce(nullif(current_setting('gm.lqueries', true), ''), '{}')::lquery[] $$;

CREATE FUNCTION gm_client_ip() RETURNS inet LANGUAGE plpgsql STABLE AS
$$ BEGIN RETURN nullif(current_setting('gm.client_ip', true), '')::inet;
EXCEPTION WHEN invalid_text_representation THEN RETURN NULL; END $$;

-- ids of the orgs whose rows the caller may see; empty unless a scope was set (default deny)
CREATE FUNCTION gm_visible_org_ids() RETURNS integer[] LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public AS
$$ SELECT coalesce(array_agg(id), '{}') FROM orgs
   WHERE NOT gm_scope_all() AND path ? gm_scope_lqueries() $$;

CREATE FUNCTION gm_redact(j jsonb, cols text[]) RETURNS jsonb LANGUAGE sql IMMUTABLE AS
$$ SELECT coalesce(j || (SELECT jsonb_object_agg(c, '[redacted:' || left(md5(j->>c), 8) || ']')
                         FROM unnest(cols) c WHERE j->>c IS NOT NULL), j) $$;

CREATE FUNCTION gm_row_key(j jsonb, keys text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT string_agg(j->>k, ':') FROM unnest(string_to_array(keys, ',')) k $$;

-- statement-level audit trigger: TG_ARGV[0] = key columns (comma separated), rest = redacted columns.
-- With gm.audit_mode = 'summary' (bulk jobs recomputing derived fields) one row per statement records
-- the operation and the number of rows instead of one row per changed row.
CREATE FUNCTION gm_audit_rows() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS
$$
DECLARE
  keys text := TG_ARGV[0];
  redact text[] := coalesce(TG_ARGV[1:], '{}');
  rid text := nullif(current_setting('gm.request_id', true), '');
  affected bigint;
BEGIN
  IF current_setting('gm.audit_mode', true) = 'summary' THEN
    IF TG_OP = 'DELETE' THEN SELECT count(*) INTO affected FROM old_rows;
    ELSE SELECT count(*) INTO affected FROM new_rows; END IF;
    IF affected > 0 THEN
      INSERT INTO audit_log (actor_user_id, actor_org_id, action, entity, detail, request_id, client_ip)
      VALUES (gm_user_id(), gm_org_id(), lower(TG_OP) || '_bulk', TG_TABLE_NAME,
              jsonb_build_object('rows', affected), rid, gm_client_ip());
    END IF;
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO audit_log (actor_user_id, actor_org_id, action, entity, entity_id, after, request_id, client_ip)
    SELECT gm_user_id(), gm_org_id(), 'insert', TG_TABLE_NAME, gm_row_key(j, keys), gm_redact(j, redact),
           rid, gm_client_ip()
    FROM (SELECT to_jsonb(n) AS j FROM new_rows n) s;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO audit_log (actor_user_id, actor_org_id, action, entity, entity_id, before, request_id, client_ip)
    SELECT gm_user_id(), gm_org_id(), 'delete', TG_TABLE_NAME, gm_row_key(j, keys), gm_redact(j, redact),
           rid, gm_client_ip()
    FROM (SELECT to_jsonb(o) AS j FROM old_rows o) s;
  ELSE
    INSERT INTO audit_log (actor_user_id, actor_org_id, action, entity, entity_id, before, after, request_id,
                           client_ip)
    SELECT gm_user_id(), gm_org_id(), 'update', TG_TABLE_NAME, o.k, gm_redact(o.j, redact),
           gm_redact(n.j, redact), rid, gm_client_ip()
    FROM (SELECT to_jsonb(x) AS j, gm_row_key(to_jsonb(x), keys) AS k FROM old_rows x) o
    JOIN (SELECT to_jsonb(x) AS j, gm_row_key(to_jsonb(x), keys) AS k FROM new_rows x) n ON n.k = o.k
    WHERE (o.j - 'updated_at') IS DISTINCT FROM (n.j - 'updated_at');
  END IF;
  RETURN NULL;
END
$$;

-- explicit audit events (login, elevation, reveal ...): the app role may call this, not write the table
CREATE FUNCTION gm_audit_event(p_action text, p_entity text, p_entity_id text, p_detail jsonb,
                               p_actor integer DEFAULT NULL) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public AS
$$ INSERT INTO audit_log (actor_user_id, actor_org_id, action, entity, entity_id, detail, request_id, client_ip)
   VALUES (coalesce(p_actor, gm_user_id()), gm_org_id(), p_action, p_entity, p_entity_id, p_detail,
           nullif(current_setting('gm.request_id', true), ''), gm_client_ip()) $$;

-- is a unique business key already used (possibly by a row outside the caller's scope)?
-- Only whitelisted keys may be probed, so this is no oracle for other columns.
CREATE FUNCTION gm_key_taken(p_key text, p_value text, p_own_id integer) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS
$$
BEGIN
  IF p_key NOT IN ('orgs.code', 'users.username', 'users.employee_no', 'devices.device_id') THEN
    RAISE EXCEPTION 'key % cannot be probed', p_key;
  END IF;
  RETURN CASE p_key
    WHEN 'orgs.code' THEN EXISTS (SELECT 1 FROM orgs WHERE code = p_value AND id IS DISTINCT FROM p_own_id)
    WHEN 'users.username' THEN EXISTS (SELECT 1 FROM users WHERE username = p_value AND id IS DISTINCT FROM p_own_id)
    WHEN 'users.employee_no' THEN
      EXISTS (SELECT 1 FROM users WHERE employee_no = p_value AND id IS DISTINCT FROM p_own_id)
    ELSE EXISTS (SELECT 1 FROM devices WHERE device_id = p_value AND id IS DISTINCT FROM p_own_id)
  END;
END
$$;

-- orgs.path = parent's path + n<id>; kept by trigger so no code can get it wrong
CREATE FUNCTION gm_orgs_set_path() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS
$$
DECLARE parent_path ltree;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.id <> OLD.id THEN
    RAISE EXCEPTION 'org id cannot change' USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.parent_id IS NULL THEN
    NEW.path := ('n' || NEW.id)::ltree;
  ELSE
    SELECT path INTO parent_path FROM orgs WHERE id = NEW.parent_id;
    IF parent_path IS NULL THEN
      RAISE EXCEPTION 'parent org % does not exist', NEW.parent_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND parent_path <@ OLD.path THEN
      RAISE EXCEPTION 'an org cannot be moved under itself' USING ERRCODE = 'check_violation',
        CONSTRAINT = 'orgs_no_cycle';
    END IF;
    NEW.path := parent_path || ('n' || NEW.id)::ltree;
  END IF;
  RETURN NEW;
END
$$;

CREATE FUNCTION gm_orgs_move_subtree() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public AS
$$ BEGIN
  UPDATE orgs SET path = NEW.path || subpath(path, nlevel(OLD.path))
  WHERE path <@ OLD.path AND id <> NEW.id;
  RETURN NULL;
END $$;

CREATE TRIGGER orgs_set_path BEFORE INSERT ON orgs FOR EACH ROW EXECUTE FUNCTION gm_orgs_set_path();
CREATE TRIGGER orgs_reparent BEFORE UPDATE OF parent_id, id ON orgs FOR EACH ROW
  WHEN (OLD.parent_id IS DISTINCT FROM NEW.parent_id OR OLD.id <> NEW.id) EXECUTE FUNCTION gm_orgs_set_path();
CREATE TRIGGER orgs_move_subtree AFTER UPDATE OF parent_id ON orgs FOR EACH ROW
  WHEN (OLD.path IS DISTINCT FROM NEW.path) EXECUTE FUNCTION gm_orgs_move_subtree();
"""

# PostGIS's bbox operators are not LEAKPROOF as installed, so under RLS the planner will not use
# them as GiST index conditions ahead of the policy (see docs/DATA_SCOPE.md). They reveal only a
# boolean about two boxes. Needs a superuser; skipped (with a notice) otherwise.
LEAKPROOF = r"""
DO $$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    ALTER FUNCTION geometry_overlaps(geometry, geometry) LEAKPROOF;
    ALTER FUNCTION geometry_contains(geometry, geometry) LEAKPROOF;
    ALTER FUNCTION geometry_within(geometry, geometry) LEAKPROOF;
  ELSE
    RAISE NOTICE 'not a superuser: mark geometry_overlaps/contains/within LEAKPROOF by hand';
  END IF;
END $$;
"""

SCOPED = ("orgs", "users", "devices", "auth_sessions", "user_roles")
GLOBAL = ("roles", "permissions", "role_permissions", "menus", "dict_types", "dict_items")


def upgrade() -> None:
    op.execute(FUNCTIONS)
    op.execute(LEAKPROOF)
    role = app_role()

    # orgs: scope by ltree path; the caller always sees his own org
    op.execute("ALTER TABLE orgs ENABLE ROW LEVEL SECURITY")
    in_scope = f"{SCOPE_ALL} OR path ? (SELECT gm_scope_lqueries())::lquery[]"
    op.execute(f"CREATE POLICY orgs_read ON orgs FOR SELECT USING ({in_scope} OR id = (SELECT gm_org_id()))")
    op.execute(f"CREATE POLICY orgs_insert ON orgs FOR INSERT WITH CHECK ({in_scope})")
    op.execute(f"CREATE POLICY orgs_update ON orgs FOR UPDATE USING ({in_scope}) WITH CHECK ({in_scope})")
    op.execute(f"CREATE POLICY orgs_delete ON orgs FOR DELETE USING ({in_scope})")

    # users: rows of orgs in scope, plus the caller himself (who may not move himself elsewhere)
    op.execute("ALTER TABLE users ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY users_scope ON users USING ({SCOPE_ALL} OR org_id {IN_SCOPE_ORGS}"
        f" OR id = (SELECT gm_user_id()))"
        f" WITH CHECK ({SCOPE_ALL} OR org_id {IN_SCOPE_ORGS}"
        f" OR (id = (SELECT gm_user_id()) AND org_id = (SELECT gm_org_id())))"
    )
    enable_org_scope("devices", owner_predicate="user_id = (SELECT gm_user_id())")
    op.execute("ALTER TABLE auth_sessions ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY auth_sessions_own ON auth_sessions USING ({SCOPE_ALL} OR user_id = (SELECT gm_user_id()))"
    )
    # role membership follows the visibility of the user it belongs to
    op.execute("ALTER TABLE user_roles ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY user_roles_scope ON user_roles USING ({SCOPE_ALL} OR user_id IN (SELECT id FROM users))"
    )
    # audit log: read-only for the app; rows of actors in scope
    op.execute("ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY audit_log_read ON audit_log FOR SELECT USING ({SCOPE_ALL} OR actor_org_id {IN_SCOPE_ORGS})")

    for table in SCOPED + GLOBAL:
        grant_app(table)
    grant_app("audit_log", "SELECT")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    op.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}")

    audit_table("orgs")
    audit_table("users", redact=("password_hash",))
    audit_table("roles")
    audit_table("permissions")
    audit_table("menus")
    audit_table("dict_types")
    audit_table("dict_items")
    audit_table("devices")
    audit_table("auth_sessions", redact=("refresh_token_hash",))
    audit_table("user_roles", keys=("user_id", "role_id"))
    audit_table("role_permissions", keys=("role_id", "permission_id"))


def downgrade() -> None:
    role = app_role()
    for table in ("orgs", "users", "roles", "permissions", "menus", "dict_types", "dict_items", "devices",
                  "auth_sessions", "user_roles", "role_permissions"):
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_audit_{event} ON {table}")
    for table in ("orgs", "users", "devices", "auth_sessions", "user_roles", "audit_log"):
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute(
            f"DO $$ DECLARE p record; BEGIN FOR p IN SELECT policyname FROM pg_policies WHERE tablename = '{table}'"
            f" LOOP EXECUTE format('DROP POLICY %I ON {table}', p.policyname); END LOOP; END $$"
        )
    op.execute("DROP TRIGGER IF EXISTS orgs_set_path ON orgs")
    op.execute("DROP TRIGGER IF EXISTS orgs_reparent ON orgs")
    op.execute("DROP TRIGGER IF EXISTS orgs_move_subtree ON orgs")
    for fn in ("gm_orgs_move_subtree()", "gm_orgs_set_path()", "gm_audit_event(text, text, text, jsonb, integer)",
               "gm_audit_rows()", "gm_key_taken(text, text, integer)", "gm_row_key(jsonb, text)", "gm_redact(jsonb, text[])", "gm_visible_org_ids()",
               "gm_client_ip()", "gm_scope_lqueries()", "gm_scope_all()", "gm_org_id()", "gm_user_id()"):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}")
