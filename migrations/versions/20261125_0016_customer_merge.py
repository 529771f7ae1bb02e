"""customer duplicates and merge (客户查重与合并), account ownership history (管户关系)

- customer_status gains 'merged'; customers.merged_into points a merged archive at its survivor.
- customer_match_keys: derived matching keys (normalised name, pinyin, fuzzy pinyin key, initials,
  normalised address) computed in Python by the detection and refreshed when name/address change.
- duplicate_candidates: pairs (a < b) with reasons, score, status open|merged|dismissed.
- customer_merges: one row per merge with before/after images of both archives and the moved
  references, so the merge can be undone exactly.
- customer_ownerships: the history of each customer's owner (客户经理) and org, maintained by a trigger
  on customers (insert, owner/org change) with the reason from the transaction-local setting
  gm.ownership_reason (and gm.ownership_source); backfilled for existing customers.
All child tables follow their customers' visibility (both customers for pairs and merges) and are audited.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql_helpers import SCOPE_ALL, app_role, audit_table, grant_app

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

VISIBLE = "EXISTS (SELECT 1 FROM customers c WHERE c.id = {col})"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    default = None if nullable else sa.text("now()")
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default, nullable=nullable)


def _user(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


def _customer(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False)


def _scope(table: str, *cols: str, read_only: bool = False) -> None:
    predicate = f"{SCOPE_ALL} OR (" + " AND ".join(VISIBLE.format(col=c) for c in cols) + ")"
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({predicate}) WITH CHECK ({predicate})")
    grant_app(table, "SELECT" if read_only else "SELECT, INSERT, UPDATE, DELETE")


def upgrade() -> None:
    # a new enum value cannot be used in the transaction that adds it: add it in its own (committed) step
    with op.get_context().autocommit_block():
        op.execute("ALTER TYPE customer_status ADD VALUE IF NOT EXISTS 'merged'")
    op.add_column("customers", sa.Column("merged_into", sa.Integer(),
                                         sa.ForeignKey("customers.id", ondelete="RESTRICT"), nullable=True))
    op.create_index("ix_customers_merged_into", "customers", ["merged_into"],
                    postgresql_where=sa.text("merged_into IS NOT NULL"))
    op.execute("ALTER TABLE customers ADD CONSTRAINT ck_customers_merged_has_survivor CHECK "
               "((status = 'merged') = (merged_into IS NOT NULL) AND merged_into IS DISTINCT FROM id)")

    op.create_table(
        "customer_match_keys",
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.SmallInteger(), nullable=False),
        sa.Column("name_src", sa.String(100), nullable=False),  # what the keys were computed from
        sa.Column("address_src", sa.String(300), nullable=True),
        sa.Column("name_core", sa.String(100), nullable=False),
        sa.Column("pinyin", sa.String(600), nullable=False),
        sa.Column("initials", sa.String(100), nullable=False),
        sa.Column("name_key", sa.String(600), nullable=False),  # fuzzy pinyin (模糊音) blocking key
        sa.Column("address_key", sa.String(300), nullable=True),
        _ts("updated_at"),
    )
    op.create_index("ix_customer_match_keys_name_key", "customer_match_keys", ["name_key"])
    op.create_index("ix_customer_match_keys_address_key", "customer_match_keys", ["address_key"],
                    postgresql_where=sa.text("address_key IS NOT NULL"))
    op.create_index("ix_customer_match_keys_pinyin_trgm", "customer_match_keys", ["pinyin"],
                    postgresql_using="gin", postgresql_ops={"pinyin": "gin_trgm_ops"})

    postgresql.ENUM("open", "merged", "dismissed", name="duplicate_status").create(op.get_bind())
    op.create_table(
        "duplicate_candidates",
        sa.Column("id", sa.Integer(), primary_key=True),
        _customer("customer_a_id"),
        _customer("customer_b_id"),
        sa.Column("reasons", postgresql.ARRAY(sa.String(32)), nullable=False),
        sa.Column("score", sa.Numeric(4, 3), nullable=False),
        sa.Column("name_similarity", sa.Numeric(4, 3), nullable=True),
        sa.Column("distance_m", sa.Numeric(10, 1), nullable=True),
        sa.Column("status", postgresql.ENUM(name="duplicate_status", create_type=False), nullable=False,
                  server_default="open"),
        _ts("detected_at"),
        _user("detected_by"),
        _ts("decided_at", nullable=True),
        _user("decided_by"),
        sa.Column("note", sa.String(200), nullable=True),
        sa.Column("merge_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("customer_a_id < customer_b_id", name="ordered_pair"),
        sa.UniqueConstraint("customer_a_id", "customer_b_id", name="uq_duplicate_candidates_pair"),
    )
    op.create_index("ix_duplicate_candidates_b", "duplicate_candidates", ["customer_b_id"])
    op.create_index("ix_duplicate_candidates_open", "duplicate_candidates", ["score", "id"],
                    postgresql_where=sa.text("status = 'open'"))

    op.create_table(
        "customer_merges",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("survivor_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("merged_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("candidate_id", sa.Integer(), sa.ForeignKey("duplicate_candidates.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("status", sa.String(8), nullable=False, server_default="done"),
        sa.Column("choices", postgresql.JSONB(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        # full row images (identifier columns stay SM4 ciphertext; redacted in the audit log)
        sa.Column("survivor_before", postgresql.JSONB(), nullable=False),
        sa.Column("merged_before", postgresql.JSONB(), nullable=False),
        sa.Column("survivor_after", postgresql.JSONB(), nullable=False),
        sa.Column("merged_after", postgresql.JSONB(), nullable=False),
        # [{table, column, moved: [row key...], deleted: [row image...]}]
        sa.Column("moved_refs", postgresql.JSONB(), nullable=False),
        _user("merged_by"),
        _ts("merged_at"),
        _user("undone_by"),
        _ts("undone_at", nullable=True),
        sa.CheckConstraint("status IN ('done', 'undone')", name="merge_status_known"),
        sa.CheckConstraint("survivor_id <> merged_id", name="two_customers"),
    )
    op.create_index("ix_customer_merges_survivor", "customer_merges", ["survivor_id"])
    op.create_index("ix_customer_merges_merged", "customer_merges", ["merged_id"])
    op.create_foreign_key("fk_duplicate_candidates_merge_id_customer_merges", "duplicate_candidates",
                          "customer_merges", ["merge_id"], ["id"], ondelete="SET NULL")

    op.create_table(
        "customer_ownerships",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        _customer("customer_id"),
        sa.Column("owner_user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="SET NULL"), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        _user("changed_by"),
        sa.Column("source", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
    )
    op.create_index("ix_customer_ownerships_customer", "customer_ownerships", ["customer_id", "valid_from"])
    op.create_index("ix_customer_ownerships_owner", "customer_ownerships", ["owner_user_id"])
    op.create_index("uq_customer_ownerships_open", "customer_ownerships", ["customer_id"], unique=True,
                    postgresql_where=sa.text("valid_to IS NULL"))
    # the history is written only by this trigger (the app role may read it, not write it)
    op.execute("""
        CREATE FUNCTION gm_customer_ownership() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = public AS $$
        DECLARE
          v_reason text := left(nullif(current_setting('gm.ownership_reason', true), ''), 200);
          v_source text := left(nullif(current_setting('gm.ownership_source', true), ''), 32);
        BEGIN
          IF TG_OP = 'UPDATE' THEN
            IF NEW.owner_user_id IS NOT DISTINCT FROM OLD.owner_user_id AND NEW.org_id = OLD.org_id THEN
              RETURN NULL;
            END IF;
            UPDATE customer_ownerships SET valid_to = now() WHERE customer_id = NEW.id AND valid_to IS NULL;
          END IF;
          IF NEW.owner_user_id IS NOT NULL THEN
            INSERT INTO customer_ownerships (customer_id, owner_user_id, org_id, valid_from, changed_by, source, reason)
            VALUES (NEW.id, NEW.owner_user_id, NEW.org_id, now(), gm_user_id(),
                    coalesce(v_source, CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'edit' END), v_reason);
          END IF;
          RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER customers_ownership_insert AFTER INSERT ON customers FOR EACH ROW "
               "EXECUTE FUNCTION gm_customer_ownership()")
    op.execute("CREATE TRIGGER customers_ownership_update AFTER UPDATE OF owner_user_id, org_id ON customers "
               "FOR EACH ROW EXECUTE FUNCTION gm_customer_ownership()")
    op.execute("""
        INSERT INTO customer_ownerships (customer_id, owner_user_id, org_id, valid_from, changed_by, source, reason)
        SELECT id, owner_user_id, org_id, created_at, created_by, 'backfill', '迁移时回填（此前的变更无记录）'
        FROM customers WHERE owner_user_id IS NOT NULL""")

    _scope("customer_match_keys", "customer_id")
    _scope("duplicate_candidates", "customer_a_id", "customer_b_id")
    _scope("customer_merges", "survivor_id", "merged_id")
    _scope("customer_ownerships", "customer_id", read_only=True)
    for seq in ("duplicate_candidates_id_seq", "customer_merges_id_seq"):
        op.execute(f"GRANT USAGE ON SEQUENCE {seq} TO {app_role()}")
    audit_table("customer_match_keys", keys=("customer_id",))
    audit_table("duplicate_candidates")
    audit_table("customer_merges", redact=("survivor_before", "merged_before", "survivor_after", "merged_after",
                                           "moved_refs"))
    audit_table("customer_ownerships")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS customers_ownership_insert ON customers")
    op.execute("DROP TRIGGER IF EXISTS customers_ownership_update ON customers")
    op.execute("DROP FUNCTION IF EXISTS gm_customer_ownership()")
    op.drop_table("customer_ownerships")
    op.drop_constraint("fk_duplicate_candidates_merge_id_customer_merges", "duplicate_candidates")
    op.drop_table("customer_merges")
    op.drop_table("duplicate_candidates")
    op.execute("DROP TYPE IF EXISTS duplicate_status")
    op.drop_table("customer_match_keys")
    # merged archives cannot stay 'merged' without their survivor link: they come back as closed
    op.execute("UPDATE customers SET status = 'closed', merged_into = NULL WHERE status = 'merged'")
    op.execute("ALTER TABLE customers DROP CONSTRAINT ck_customers_merged_has_survivor")
    op.drop_index("ix_customers_merged_into", "customers")
    op.drop_column("customers", "merged_into")
    # PostgreSQL cannot drop an enum value: 'merged' stays in customer_status (unused)
