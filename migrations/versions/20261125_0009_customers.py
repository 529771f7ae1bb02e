"""customers (一户一档): persons and companies, formal or potential; SM4-encrypted identifiers with
SM3-HMAC blind indexes; owner (管户), org and grid; scoped and audited

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role, audit_table, grant_app

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ENUMS = {
    "customer_kind": ("person", "company"),
    "customer_category": ("formal", "potential"),
    "location_source": ("geocoded", "corrected", "gps", "imported"),
    "profile_type": ("farmer", "merchant", "micro_enterprise"),
    "customer_status": ("active", "closed"),
}


def upgrade() -> None:
    for name, values in ENUMS.items():
        postgresql.ENUM(*values, name=name).create(op.get_bind())

    def enum(name: str) -> postgresql.ENUM:
        return postgresql.ENUM(*ENUMS[name], name=name, create_type=False)

    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", enum("customer_kind"), nullable=False),
        sa.Column("category", enum("customer_category"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("customer_no", sa.String(32), nullable=True, unique=True),
        sa.Column("profile_type", enum("profile_type"), nullable=True),
        sa.Column("gender", sa.String(1), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("industry", sa.String(64), nullable=True),
        # sensitive identifiers: SM4-GCM ciphertext, SM3-HMAC blind index, masked display form
        sa.Column("id_number_enc", sa.LargeBinary(), nullable=True),
        sa.Column("id_number_bidx", sa.String(64), nullable=True),
        sa.Column("id_number_mask", sa.String(32), nullable=True),
        sa.Column("uscc_enc", sa.LargeBinary(), nullable=True),
        sa.Column("uscc_bidx", sa.String(64), nullable=True),
        sa.Column("uscc_mask", sa.String(32), nullable=True),
        sa.Column("phone_enc", sa.LargeBinary(), nullable=True),
        sa.Column("phone_bidx", sa.String(64), nullable=True),
        sa.Column("phone_mask", sa.String(32), nullable=True),
        sa.Column("address", sa.String(300), nullable=True),
        sa.Column("geom", geoalchemy2.types.Geometry("POINT", srid=4326, spatial_index=False), nullable=True),
        sa.Column("h3_r10", sa.BigInteger(), nullable=True),
        sa.Column("location_source", enum("location_source"), nullable=True),
        sa.Column("grid_id", sa.Integer(), sa.ForeignKey("grids.id", ondelete="SET NULL"), nullable=True),
        sa.Column("grid_override_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("grid_override_reason", sa.String(200), nullable=True),
        sa.Column("owner_user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("status", enum("customer_status"), nullable=False, server_default="active"),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("updated_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind = 'company' OR uscc_enc IS NULL", name="uscc_company_only"),
        sa.CheckConstraint("kind = 'person' OR id_number_enc IS NULL", name="id_number_person_only"),
    )
    op.create_index("ix_customers_geom", "customers", ["geom"], postgresql_using="gist")
    op.create_index("ix_customers_org_id", "customers", ["org_id"])
    op.create_index("ix_customers_owner", "customers", ["owner_user_id"])
    op.create_index("ix_customers_grid_id", "customers", ["grid_id"])
    op.create_index("ix_customers_h3_r10", "customers", ["h3_r10"])
    # one archive per person / company: the blind index makes the identifier unique without revealing it
    op.create_index("uq_customers_id_number_bidx", "customers", ["id_number_bidx"], unique=True,
                    postgresql_where=sa.text("id_number_bidx IS NOT NULL"))
    op.create_index("uq_customers_uscc_bidx", "customers", ["uscc_bidx"], unique=True,
                    postgresql_where=sa.text("uscc_bidx IS NOT NULL"))
    op.create_index("ix_customers_phone_bidx", "customers", ["phone_bidx"])
    op.execute("""
        CREATE FUNCTION gm_customer_bidx_taken(p_field text, p_bidx text, p_own_id integer) RETURNS boolean
        LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
        BEGIN
          IF p_field = 'id_number' THEN
            RETURN EXISTS (SELECT 1 FROM customers WHERE id_number_bidx = p_bidx AND id IS DISTINCT FROM p_own_id);
          ELSIF p_field = 'uscc' THEN
            RETURN EXISTS (SELECT 1 FROM customers WHERE uscc_bidx = p_bidx AND id IS DISTINCT FROM p_own_id);
          END IF;
          RAISE EXCEPTION 'field % cannot be probed', p_field;
        END $$""")
    op.execute(f"GRANT EXECUTE ON FUNCTION gm_customer_bidx_taken(text, text, integer) TO {app_role()}")
    op.create_index("ix_customers_name_trgm", "customers", ["name"], postgresql_using="gin",
                    postgresql_ops={"name": "gin_trgm_ops"})
    # scope: rows of orgs in scope, or customers the caller manages (管户), reads and writes alike
    op.execute("ALTER TABLE customers ENABLE ROW LEVEL SECURITY")
    predicate = f"{SCOPE_ALL} OR org_id {IN_SCOPE_ORGS} OR owner_user_id = (SELECT gm_user_id())"
    op.execute(f"CREATE POLICY customers_scope ON customers USING ({predicate}) WITH CHECK ({predicate})")
    # a grid with customers in it cannot be deleted until they are moved
    op.execute("""
        CREATE OR REPLACE FUNCTION gm_grid_dependents(p_id integer) RETURNS jsonb LANGUAGE sql STABLE
        SECURITY DEFINER SET search_path = public AS
        $$ SELECT jsonb_build_object('children', (SELECT count(*) FROM grids WHERE parent_id = p_id),
                                     'members', (SELECT count(*) FROM grid_members WHERE grid_id = p_id),
                                     'customers', (SELECT count(*) FROM customers WHERE grid_id = p_id)) $$""")
    grant_app("customers")
    op.execute(f"GRANT USAGE ON SEQUENCE customers_id_seq TO {app_role()}")
    # the audit log keeps only masks and blind indexes, never ciphertext of identifiers
    audit_table("customers", redact=("id_number_enc", "uscc_enc", "phone_enc"))


def downgrade() -> None:
    op.drop_table("customers")
    op.execute("DROP FUNCTION IF EXISTS gm_customer_bidx_taken(text, text, integer)")
    for name in ENUMS:
        op.execute(f"DROP TYPE IF EXISTS {name}")
