"""grid staffing (定格-定岗-定人-定责): grid assistants, assignments with history, hand-overs; scoped and audited

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql_helpers import SCOPE_ALL, app_role, audit_table, enable_org_scope, grant_app

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ENUMS = {
    "assistant_role": ("village_cadre", "party_member", "volunteer", "merchant_rep", "other"),
    "assistant_status": ("active", "inactive"),
    "grid_post": ("grid_leader", "account_manager", "grid_assistant"),
}

# Names of the people holding posts on grids the caller can see, even when the person himself (a
# leader from a higher org, an assistant of another outlet) is outside his scope. Reveals a name per
# assignment id and nothing else; the visibility test repeats the grids policy (org in scope).
FUNCTIONS = r"""
CREATE FUNCTION gm_grid_staff_names(p_ids integer[]) RETURNS TABLE (assignment_id integer, name text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT a.id, coalesce(u.name, s.name)::text
   FROM grid_assignments a
   JOIN grids g ON g.id = a.grid_id
   LEFT JOIN users u ON u.id = a.user_id
   LEFT JOIN grid_assistants s ON s.id = a.assistant_id
   WHERE a.id = ANY(p_ids) AND (gm_scope_all() OR g.org_id = ANY(gm_visible_org_ids())) $$;
"""

# rows of grid_assignments / grid_handovers follow the visibility of their grid, for reads and writes
FOLLOWS_GRID = f"{SCOPE_ALL} OR grid_id IN (SELECT id FROM grids)"


def upgrade() -> None:
    for name, values in ENUMS.items():
        postgresql.ENUM(*values, name=name).create(op.get_bind())

    def enum(name: str) -> postgresql.ENUM:
        return postgresql.ENUM(*ENUMS[name], name=name, create_type=False)

    def fk(column: str, target: str, ondelete: str, nullable: bool = True) -> sa.Column:
        return sa.Column(column, sa.Integer(), sa.ForeignKey(target, ondelete=ondelete), nullable=nullable)

    def now(column: str) -> sa.Column:
        return sa.Column(column, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)

    op.create_table(
        "grid_assistants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("kind", enum("assistant_role"), nullable=False, server_default="other"),
        fk("org_id", "orgs.id", "RESTRICT", nullable=False),
        fk("user_id", "users.id", "SET NULL"),
        sa.Column("status", enum("assistant_status"), nullable=False, server_default="active"),
        sa.Column("notes", sa.Text(), nullable=True),
        now("created_at"),
        now("updated_at"),
    )
    op.create_index("ix_grid_assistants_org_id", "grid_assistants", ["org_id"])
    op.create_index("ix_grid_assistants_name_trgm", "grid_assistants", ["name"], postgresql_using="gin",
                    postgresql_ops={"name": "gin_trgm_ops"})

    op.create_table(
        "grid_assignments",
        sa.Column("id", sa.Integer(), primary_key=True),
        fk("grid_id", "grids.id", "CASCADE", nullable=False),
        sa.Column("post", enum("grid_post"), nullable=False),
        fk("user_id", "users.id", "RESTRICT"),
        fk("assistant_id", "grid_assistants.id", "RESTRICT"),
        sa.Column("responsibilities", sa.Text(), nullable=True),
        sa.Column("kpi_targets", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("valid_from", sa.Date(), nullable=False, server_default=sa.text("CURRENT_DATE")),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("ended_reason", sa.String(500), nullable=True),
        fk("created_by", "users.id", "SET NULL"),
        fk("ended_by", "users.id", "SET NULL"),
        now("created_at"),
        now("updated_at"),
        sa.CheckConstraint("(user_id IS NULL) <> (assistant_id IS NULL)", name="one_holder"),
        sa.CheckConstraint("assistant_id IS NULL OR post = 'grid_assistant'", name="assistant_post"),
        sa.CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_period"),
        sa.CheckConstraint("jsonb_typeof(kpi_targets) = 'object'", name="kpi_object"),
    )
    current = sa.text("valid_to IS NULL")
    op.create_index("uq_grid_assignments_current_leader", "grid_assignments", ["grid_id"], unique=True,
                    postgresql_where=sa.text("valid_to IS NULL AND post = 'grid_leader'"))
    op.create_index("uq_grid_assignments_current_user", "grid_assignments", ["grid_id", "post", "user_id"],
                    unique=True, postgresql_where=sa.text("valid_to IS NULL AND user_id IS NOT NULL"))
    op.create_index("uq_grid_assignments_current_assistant", "grid_assignments", ["grid_id", "post", "assistant_id"],
                    unique=True, postgresql_where=sa.text("valid_to IS NULL AND assistant_id IS NOT NULL"))
    op.create_index("ix_grid_assignments_grid_id", "grid_assignments", ["grid_id"])
    op.create_index("ix_grid_assignments_user_current", "grid_assignments", ["user_id"], postgresql_where=current)
    op.create_index("ix_grid_assignments_assistant_id", "grid_assignments", ["assistant_id"])

    op.create_table(
        "grid_handovers",
        sa.Column("id", sa.Integer(), primary_key=True),
        fk("grid_id", "grids.id", "CASCADE", nullable=False),
        fk("from_user_id", "users.id", "RESTRICT", nullable=False),
        fk("to_user_id", "users.id", "RESTRICT", nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("include_customers", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column("moved_assignments", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("moved_customers", sa.Integer(), nullable=False, server_default="0"),
        fk("created_by", "users.id", "SET NULL"),
        now("created_at"),
        sa.Column("detail", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.CheckConstraint("btrim(reason) <> ''", name="reason_given"),
        sa.CheckConstraint("from_user_id <> to_user_id", name="different_users"),
    )
    op.create_index("ix_grid_handovers_grid_id", "grid_handovers", ["grid_id"])
    op.create_index("ix_grid_handovers_from_user_id", "grid_handovers", ["from_user_id"])
    op.create_index("ix_grid_handovers_to_user_id", "grid_handovers", ["to_user_id"])

    op.execute(FUNCTIONS)
    enable_org_scope("grid_assistants")
    for table in ("grid_assignments", "grid_handovers"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({FOLLOWS_GRID}) WITH CHECK ({FOLLOWS_GRID})")
    # history is kept: the app may end an assignment but never delete one; hand-overs are append-only
    grant_app("grid_assistants")
    grant_app("grid_assignments", "SELECT, INSERT, UPDATE")
    grant_app("grid_handovers", "SELECT, INSERT")
    role = app_role()
    for table in ("grid_assistants", "grid_assignments", "grid_handovers"):
        op.execute(f"GRANT USAGE ON SEQUENCE {table}_id_seq TO {role}")
    op.execute(f"GRANT EXECUTE ON FUNCTION gm_grid_staff_names(integer[]) TO {role}")
    audit_table("grid_assistants")
    audit_table("grid_assignments")
    audit_table("grid_handovers")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS gm_grid_staff_names(integer[])")
    op.drop_table("grid_handovers")
    op.drop_table("grid_assignments")
    op.drop_table("grid_assistants")
    for name in ENUMS:
        op.execute(f"DROP TYPE IF EXISTS {name}")
