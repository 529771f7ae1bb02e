"""customer tags (manual and rule tags over attributes and holdings) and customer groups (客群) with a
definition, live preview, submit/approve/reject review log and the approved member snapshot; scoped and audited

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role, audit_table, grant_app

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ENUMS = {
    "tag_kind": ("manual", "rule"),
    "tag_source": ("manual", "rule", "import"),
    "group_category": ("formal", "potential", "list"),
    "group_status": ("draft", "submitted", "approved", "rejected"),
    "group_review_action": ("submit", "approve", "reject", "withdraw", "reset"),
}
VISIBILITY = "visibility IN ('public', 'private')"
ME = "(SELECT gm_user_id())"


def _enum(name: str) -> postgresql.ENUM:
    return postgresql.ENUM(*ENUMS[name], name=name, create_type=False)


def _stamps() -> list[sa.Column]:
    return [sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)]


def _user(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


def _policies(table: str, read: str, write: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {table}_read ON {table} FOR SELECT USING ({read})")
    op.execute(f"CREATE POLICY {table}_insert ON {table} FOR INSERT WITH CHECK ({write})")
    op.execute(f"CREATE POLICY {table}_update ON {table} FOR UPDATE USING ({write}) WITH CHECK ({write})")
    op.execute(f"CREATE POLICY {table}_delete ON {table} FOR DELETE USING ({write})")


def upgrade() -> None:
    for name, values in ENUMS.items():
        postgresql.ENUM(*values, name=name).create(op.get_bind())
    kind = postgresql.ENUM(name="customer_kind", create_type=False)

    # is the caller's org inside p_org's subtree? (subordinates see their superiors' public tags/groups)
    op.execute("""
        CREATE FUNCTION gm_caller_org_within(p_org integer) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public AS
        $$ SELECT EXISTS (SELECT 1 FROM orgs me JOIN orgs o ON o.id = p_org
                          WHERE me.id = gm_org_id() AND me.path <@ o.path) $$""")
    # bank outlets (网点: every org with a location) for "within N metres of an outlet": public addresses,
    # readable by every rule whatever the caller's org scope; locations only, no ids or names
    op.execute("""
        CREATE FUNCTION gm_outlet_points() RETURNS TABLE (geom geometry) LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public ROWS 200 AS
        $$ SELECT location FROM orgs WHERE location IS NOT NULL $$""")
    for fn in ("gm_caller_org_within(integer)", "gm_outlet_points()"):
        op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {app_role()}")

    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(40), nullable=False, unique=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("category", sa.String(32), nullable=False, server_default="other"),
        sa.Column("color", sa.String(7), nullable=False, server_default="#1677ff"),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("kind", _enum("tag_kind"), nullable=False),
        sa.Column("rule", postgresql.JSONB(), nullable=True),
        sa.Column("visibility", sa.String(8), nullable=False, server_default="private"),
        # NULL: a bank-wide tag (made by a scope-all admin)
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="RESTRICT"), nullable=True),
        _user("created_by"), _user("updated_by"),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("computed_added", sa.Integer(), nullable=True),
        sa.Column("computed_removed", sa.Integer(), nullable=True),
        *_stamps(),
        sa.CheckConstraint(VISIBILITY, name="visibility_known"),
        sa.CheckConstraint("(kind = 'rule') = (rule IS NOT NULL)", name="rule_iff_rule_kind"),
        sa.CheckConstraint("color ~ '^#[0-9a-fA-F]{6}$'", name="color_hex"),
    )
    op.create_index("ix_tags_org_id", "tags", ["org_id"])
    op.create_table(
        "customer_tags",
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag_id", sa.Integer(), sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("source", _enum("tag_source"), nullable=False),
        _user("created_by"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("ix_customer_tags_tag_id", "customer_tags", ["tag_id", "customer_id"])

    op.create_table(
        "customer_groups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("kind", kind, nullable=False),
        sa.Column("category", _enum("group_category"), nullable=False),
        sa.Column("definition", postgresql.JSONB(), nullable=False),
        sa.Column("visibility", sa.String(8), nullable=False, server_default="private"),
        sa.Column("status", _enum("group_status"), nullable=False, server_default="draft"),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False),
        _user("updated_by"), _user("submitted_by"), _user("reviewed_by"),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_comment", sa.String(500), nullable=True),
        sa.Column("member_count", sa.Integer(), nullable=True),
        sa.Column("snapshot_at", sa.DateTime(timezone=True), nullable=True),
        *_stamps(),
        sa.CheckConstraint(VISIBILITY, name="visibility_known"),
    )
    op.create_index("ix_customer_groups_org_id", "customer_groups", ["org_id"])
    op.create_index("ix_customer_groups_created_by", "customer_groups", ["created_by"])
    op.create_table(
        "customer_group_members",
        sa.Column("group_id", sa.Integer(), sa.ForeignKey("customer_groups.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_customer_group_members_customer", "customer_group_members", ["customer_id"])
    op.create_table(
        "customer_group_reviews",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("group_id", sa.Integer(), sa.ForeignKey("customer_groups.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", _enum("group_review_action"), nullable=False),
        sa.Column("comment", sa.String(500), nullable=True),
        sa.Column("member_count", sa.Integer(), nullable=True),
        sa.Column("actor_user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("ix_customer_group_reviews_group", "customer_group_reviews", ["group_id", "id"])

    in_scope = f"{SCOPE_ALL} OR org_id {IN_SCOPE_ORGS}"
    # tags: public ones (and bank-wide ones) are read by all; private ones within the owning org's scope
    # (its subtree and whoever's scope covers it); written in scope, bank-wide ones by scope-all admins only
    _policies("tags", f"org_id IS NULL OR visibility = 'public' OR {in_scope} OR gm_caller_org_within(org_id)",
              in_scope)
    # a customer's tag is visible/writable when both the customer and the tag are
    follows = (f"{SCOPE_ALL} OR (EXISTS (SELECT 1 FROM customers c WHERE c.id = customer_id) "
               f"AND EXISTS (SELECT 1 FROM tags t WHERE t.id = tag_id))")
    op.execute("ALTER TABLE customer_tags ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY customer_tags_scope ON customer_tags USING ({follows}) WITH CHECK ({follows})")
    # groups: the creator; orgs in scope (private drafts excepted: those are the creator's alone); approved
    # public groups also reach the owning org's subtree. Privacy of submitted private groups towards
    # non-approvers in scope is applied by geo_core.groups.service (RLS cannot see permissions).
    _policies("customer_groups",
              f"{SCOPE_ALL} OR created_by = {ME} OR (org_id {IN_SCOPE_ORGS} AND (visibility = 'public' "
              f"OR status <> 'draft')) OR (visibility = 'public' AND status = 'approved' "
              f"AND gm_caller_org_within(org_id))",
              f"{in_scope} OR created_by = {ME}")
    # members: of a visible group AND a visible customer (a member list never shows a customer out of scope)
    members = (f"{SCOPE_ALL} OR (EXISTS (SELECT 1 FROM customer_groups g WHERE g.id = group_id) "
               f"AND EXISTS (SELECT 1 FROM customers c WHERE c.id = customer_id))")
    op.execute("ALTER TABLE customer_group_members ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY customer_group_members_scope ON customer_group_members USING ({members}) "
               f"WITH CHECK ({members})")
    reviews = f"{SCOPE_ALL} OR EXISTS (SELECT 1 FROM customer_groups g WHERE g.id = group_id)"
    op.execute("ALTER TABLE customer_group_reviews ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY customer_group_reviews_read ON customer_group_reviews FOR SELECT USING ({reviews})")
    # the review log is append-only for the app
    op.execute(f"CREATE POLICY customer_group_reviews_insert ON customer_group_reviews FOR INSERT "
               f"WITH CHECK ({reviews})")

    for table in ("tags", "customer_tags", "customer_groups", "customer_group_members"):
        grant_app(table)
    grant_app("customer_group_reviews", "SELECT, INSERT")
    for seq in ("tags_id_seq", "customer_groups_id_seq", "customer_group_reviews_id_seq"):
        op.execute(f"GRANT USAGE ON SEQUENCE {seq} TO {app_role()}")
    audit_table("tags")
    audit_table("customer_tags", keys=("customer_id", "tag_id"))
    audit_table("customer_groups")
    audit_table("customer_group_members", keys=("group_id", "customer_id"))
    audit_table("customer_group_reviews")


def downgrade() -> None:
    for table in ("customer_group_reviews", "customer_group_members", "customer_groups", "customer_tags", "tags"):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS gm_outlet_points()")
    op.execute("DROP FUNCTION IF EXISTS gm_caller_org_within(integer)")
    for name in ENUMS:
        op.execute(f"DROP TYPE IF EXISTS {name}")
