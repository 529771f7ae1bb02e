"""SQL snippets shared by migrations: grants, data-scope RLS policies and audit triggers.

Every table holding org-owned rows plugs into data scope with `enable_org_scope()` and into the
audit log with `audit_table()`; nothing else is needed for a new table to be protected.
"""

from __future__ import annotations

import os

from alembic import op

# The predicate every org-owned table uses. The functions are STABLE and wrapped in sub-selects so
# PostgreSQL evaluates them once per statement (InitPlan), not once per row.
SCOPE_ALL = "(SELECT gm_scope_all())"
IN_SCOPE_ORGS = "= ANY ((SELECT gm_visible_org_ids())::integer[])"


def app_role() -> str:
    role = os.environ.get("GM_APP_DB_ROLE", "gridmarket_app")
    if not role.isidentifier():
        raise ValueError("GM_APP_DB_ROLE must be a plain identifier")
    return role


def grant_app(table: str, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> None:
    op.execute(f"GRANT {privileges} ON {table} TO {app_role()}")


def enable_org_scope(table: str, org_column: str = "org_id", owner_predicate: str | None = None) -> None:
    """RLS on `table`: visible and writable when its org is in the caller's scope (or he owns the row)."""
    read = f"{SCOPE_ALL} OR {org_column} {IN_SCOPE_ORGS}"
    if owner_predicate:
        read += f" OR ({owner_predicate})"
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({read}) WITH CHECK ({read})")


def audit_table(table: str, keys: tuple[str, ...] = ("id",), redact: tuple[str, ...] = ()) -> None:
    """Statement-level triggers writing one audit row per changed row (with before/after)."""
    args = ", ".join(f"'{a}'" for a in (",".join(keys), *redact))
    statement_triggers(table, f"{table}_audit", f"gm_audit_rows({args})")


TRANSITION_TABLES = {
    "INSERT": "NEW TABLE AS new_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
}


def statement_triggers(table: str, prefix: str, function: str,
                       events: tuple[str, ...] = ("INSERT", "UPDATE", "DELETE")) -> None:
    """AFTER <event> FOR EACH STATEMENT triggers named `<prefix>_<event>` calling `function` (e.g. "f()"), with the
    transition tables `new_rows` / `old_rows`; "TRUNCATE" (no transition table) may be listed too."""
    for event in events:
        refs = f"REFERENCING {TRANSITION_TABLES[event]} " if event in TRANSITION_TABLES else ""
        op.execute(f"CREATE TRIGGER {prefix}_{event.lower()} AFTER {event} ON {table} {refs}"
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {function}")
