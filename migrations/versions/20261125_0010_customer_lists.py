"""customer lists (名单): templates, import batches with the (SM4-sealed) uploaded file, and batch
membership (customer_list_entries); built-in templates 个人客户名单 and 商户名单; scoped and audited

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role, audit_table, grant_app

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATUSES = ("uploaded", "validated", "running", "done", "failed", "rejected")


def _field(key: str, label: str, maps_to: str | None, *, type_: str = "string", required: bool = False,
           unique: bool = False) -> dict:
    return {"key": key, "label": label, "type": type_, "required": required, "dict_code": None, "regex": None,
            "unique": unique, "maps_to": maps_to, "max_length": None}


BUILTIN = (
    ("person_list", "个人客户名单", "person", None, [
        _field("name", "姓名", "name", required=True),
        _field("id_number", "身份证号", "id_number", unique=True),
        _field("phone", "手机号码", "phone"),
        _field("address", "地址", "address"),
        _field("lon", "经度", "lon", type_="decimal"),
        _field("lat", "纬度", "lat", type_="decimal"),
    ]),
    ("merchant_list", "商户名单", "company", "merchant", [
        _field("name", "商户名称", "name", required=True),
        _field("uscc", "统一社会信用代码", "uscc", unique=True),
        _field("phone", "联系电话", "phone"),
        _field("address", "经营地址", "address"),
        _field("industry", "行业", "industry"),
    ]),
)


def upgrade() -> None:
    postgresql.ENUM(*STATUSES, name="customer_import_status").create(op.get_bind())
    kind = postgresql.ENUM(name="customer_kind", create_type=False)
    profile = postgresql.ENUM(name="profile_type", create_type=False)
    op.create_table(
        "customer_list_templates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(40), nullable=True, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("customer_kind", kind, nullable=False),
        sa.Column("profile_type", profile, nullable=True),
        sa.Column("crs", sa.String(8), nullable=False, server_default="wgs84"),
        sa.Column("fields", postgresql.JSONB(), nullable=False),
        sa.Column("is_builtin", sa.Boolean(), nullable=False, server_default="false"),
        # NULL: shared by every org (built-in or made by a scope-all admin)
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("updated_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("crs IN ('wgs84', 'gcj02', 'bd09')", name="crs_known"),
    )
    op.create_index("uq_customer_list_templates_org_name", "customer_list_templates",
                    [sa.text("coalesce(org_id, 0)"), "name"], unique=True)
    op.create_table(
        "customer_import_batches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("template_id", sa.Integer(), sa.ForeignKey("customer_list_templates.id", ondelete="RESTRICT"),
                  nullable=False),
        # the template as it was at upload: later template edits never change a pending batch
        sa.Column("template_snapshot", postgresql.JSONB(), nullable=False),
        sa.Column("importer_user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("status", postgresql.ENUM(name="customer_import_status", create_type=False), nullable=False,
                  server_default="uploaded"),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("file_size", sa.Integer(), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("valid_rows", sa.Integer(), nullable=True),
        sa.Column("invalid_rows", sa.Integer(), nullable=True),
        sa.Column("matched_rows", sa.Integer(), nullable=True),
        sa.Column("created_rows", sa.Integer(), nullable=True),
        sa.Column("skipped_rows", sa.Integer(), nullable=True),
        sa.Column("skip_invalid", sa.Boolean(), nullable=False, server_default="false"),
        sa.Column("validation", postgresql.JSONB(), nullable=True),
        sa.Column("report", postgresql.JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("ix_customer_import_batches_created_at", "customer_import_batches", ["created_at"])
    op.create_index("ix_customer_import_batches_importer", "customer_import_batches", ["importer_user_id"])
    op.create_index("ix_customer_import_batches_template", "customer_import_batches", ["template_id"])
    op.create_index("ix_customer_import_batches_org", "customer_import_batches", ["org_id"])
    # the uploaded file holds identifiers in clear: it is stored SM4-sealed, apart from the (audited) batch row
    op.create_table(
        "customer_import_files",
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("customer_import_batches.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("data_enc", sa.LargeBinary(), nullable=False),
    )
    # the saved list (名单): one row per imported file row, matched to or created as a customer
    op.create_table(
        "customer_list_entries",
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("customer_import_batches.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("row_no", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("extra", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_index("ix_customer_list_entries_customer", "customer_list_entries", ["customer_id"])

    # templates: shared ones (org NULL) are read by all and written by scope-all admins only
    in_scope = f"{SCOPE_ALL} OR org_id {IN_SCOPE_ORGS}"
    op.execute("ALTER TABLE customer_list_templates ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY customer_list_templates_read ON customer_list_templates FOR SELECT "
               f"USING (org_id IS NULL OR {in_scope})")
    for action in ("INSERT", "UPDATE", "DELETE"):
        using = "" if action == "INSERT" else f" USING ({in_scope})"
        check = "" if action == "DELETE" else f" WITH CHECK ({in_scope})"
        op.execute(f"CREATE POLICY customer_list_templates_{action.lower()} ON customer_list_templates "
                   f"FOR {action}{using}{check}")
    # batches: of orgs in scope, or imported by the caller; files and entries follow their batch
    batch_scope = f"{in_scope} OR importer_user_id = (SELECT gm_user_id())"
    op.execute("ALTER TABLE customer_import_batches ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY customer_import_batches_scope ON customer_import_batches USING ({batch_scope}) "
               f"WITH CHECK ({batch_scope})")
    for table in ("customer_import_files", "customer_list_entries"):
        follows = f"{SCOPE_ALL} OR batch_id IN (SELECT id FROM customer_import_batches)"
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({follows}) WITH CHECK ({follows})")
    for table in ("customer_list_templates", "customer_import_batches", "customer_import_files",
                  "customer_list_entries"):
        grant_app(table)
    for seq in ("customer_list_templates_id_seq", "customer_import_batches_id_seq"):
        op.execute(f"GRANT USAGE ON SEQUENCE {seq} TO {app_role()}")
    audit_table("customer_list_templates")
    audit_table("customer_import_batches", redact=("validation", "report"))
    audit_table("customer_list_entries", keys=("batch_id", "row_no"))

    for code, name, customer_kind, profile_type, fields in BUILTIN:
        op.execute(sa.text(
            "INSERT INTO customer_list_templates (code, name, customer_kind, profile_type, fields, is_builtin) "
            "VALUES (:c, :n, CAST(:k AS customer_kind), CAST(:p AS profile_type), CAST(:f AS jsonb), true)"
        ).bindparams(c=code, n=name, k=customer_kind, p=profile_type, f=json.dumps(fields, ensure_ascii=False)))


def downgrade() -> None:
    for table in ("customer_list_entries", "customer_import_files", "customer_import_batches",
                  "customer_list_templates"):
        op.drop_table(table)
    op.execute("DROP TYPE IF EXISTS customer_import_status")
