"""customer profiles (建档): versioned bank-defined field templates per profile type (农户/商户/小微企业) with
built-in templates; one current profile per customer with completeness and missing fields, and its revision
history; profile collection tasks (补录任务) for missing fields; daily coverage indicator snapshots.
Scoped (through the customer, or by org) and audited.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations.sql_helpers import IN_SCOPE_ORGS, SCOPE_ALL, app_role, audit_table, grant_app

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

THROUGH_CUSTOMER = f"{SCOPE_ALL} OR EXISTS (SELECT 1 FROM customers c WHERE c.id = customer_id)"


def _f(key: str, label: str, type_: str, group: str, *, required: bool = False, options: tuple = (),
       regex: str | None = None, min_: float | None = None, max_: float | None = None, unit: str | None = None,
       max_length: int | None = None) -> dict:
    return {"key": key, "label": label, "type": type_, "required": required, "group": group,
            "options": [{"value": v, "label": lbl} for v, lbl in options] or None, "regex": regex,
            "min": min_, "max": max_, "max_length": max_length, "unit": unit, "weight": None, "help": None}


YES_NO_LOAN = (("planting", "种植"), ("breeding", "养殖"), ("house", "建房/购房"), ("education", "教育"),
               ("consumption", "消费"), ("business", "经营周转"), ("other", "其他"))
FARMER = [
    _f("household_head", "户主姓名", "string", "家庭情况", required=True, max_length=50),
    _f("household_size", "家庭人口", "integer", "家庭情况", required=True, min_=1, max_=30, unit="人"),
    _f("labor_count", "劳动力人数", "integer", "家庭情况", min_=0, max_=30, unit="人"),
    _f("household_members", "家庭成员情况", "text", "家庭情况", max_length=500),
    _f("contact_phone", "联系电话", "phone", "家庭情况"),
    _f("village_group", "所属村民小组", "string", "家庭情况", max_length=50),
    _f("land_area_mu", "承包土地面积", "decimal", "生产经营", required=True, min_=0, max_=100000, unit="亩"),
    _f("transferred_land_mu", "流转土地面积", "decimal", "生产经营", min_=0, max_=100000, unit="亩"),
    _f("crops", "主要种植品种", "multi_enum", "生产经营", options=(
        ("rice", "水稻"), ("vegetables", "蔬菜"), ("fruit", "水果"), ("tea", "茶叶"), ("oil_crops", "油菜"),
        ("tobacco", "烟叶"), ("seedlings", "苗木花卉"), ("none", "无"), ("other", "其他"))),
    _f("livestock", "养殖品种", "multi_enum", "生产经营", options=(
        ("pig", "生猪"), ("poultry", "家禽"), ("cattle_sheep", "牛羊"), ("aquatic", "水产"), ("none", "无"),
        ("other", "其他"))),
    _f("livestock_scale", "养殖规模", "integer", "生产经营", min_=0, max_=1000000, unit="头/羽"),
    _f("main_income_source", "主要收入来源", "enum", "收入资产", required=True, options=(
        ("planting", "种植"), ("breeding", "养殖"), ("migrant_work", "外出务工"), ("business", "个体经营"),
        ("salary", "工资性收入"), ("other", "其他"))),
    _f("annual_income", "家庭年收入", "decimal", "收入资产", required=True, min_=0, max_=100000000, unit="元"),
    _f("housing", "住房情况", "enum", "收入资产", options=(
        ("owned_brick", "自建砖混房"), ("owned_wood", "自建木质/土坯房"), ("apartment", "商品房"),
        ("rented", "租住"))),
    _f("vehicles", "车辆及农机", "multi_enum", "收入资产", options=(
        ("car", "小汽车"), ("truck", "货车"), ("farm_machine", "农机"), ("none", "无"))),
    _f("other_bank_loans", "他行贷款", "boolean", "金融需求"),
    _f("loan_need", "有无贷款需求", "boolean", "金融需求", required=True),
    _f("loan_amount_wanted", "意向贷款金额", "decimal", "金融需求", min_=0, max_=100000000, unit="元"),
    _f("loan_purpose", "贷款用途", "enum", "金融需求", options=YES_NO_LOAN),
    _f("cooperative_member", "是否合作社社员", "boolean", "金融需求"),
]
MERCHANT = [
    _f("shop_name", "店铺招牌名称", "string", "基本信息", required=True, max_length=100),
    _f("operator_name", "经营者姓名", "string", "基本信息", required=True, max_length=50),
    _f("contact_phone", "联系电话", "phone", "基本信息", required=True),
    _f("business_type", "经营类别", "enum", "基本信息", required=True, options=(
        ("grocery", "副食/便利店"), ("supermarket", "超市"), ("catering", "餐饮"), ("pharmacy", "药店"),
        ("hardware", "五金建材"), ("agri_supplies", "农资"), ("beauty", "美容美发"), ("fresh", "果蔬生鲜"),
        ("clothing", "服装"), ("services", "生活服务"), ("other", "其他"))),
    _f("years_in_business", "经营年限", "integer", "基本信息", min_=0, max_=100, unit="年"),
    _f("business_license", "是否办理营业执照", "boolean", "基本信息"),
    _f("shop_area_m2", "经营面积", "decimal", "经营情况", min_=0, max_=100000, unit="㎡"),
    _f("premises", "经营场所", "enum", "经营情况", options=(("owned", "自有"), ("rented", "租赁"))),
    _f("monthly_rent", "月租金", "decimal", "经营情况", min_=0, max_=10000000, unit="元"),
    _f("business_hours", "营业时间", "string", "经营情况", regex=r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d",
       max_length=11),
    _f("employees", "从业人数", "integer", "经营情况", min_=0, max_=10000, unit="人"),
    _f("monthly_turnover", "月均营业额", "decimal", "经营情况", required=True, min_=0, max_=1000000000, unit="元"),
    _f("payment_methods", "收款方式", "multi_enum", "收单结算", required=True, options=(
        ("cash", "现金"), ("our_pos", "本行POS"), ("our_qr", "本行聚合码"), ("other_pos", "他行POS"),
        ("wechat", "微信收款码"), ("alipay", "支付宝收款码"))),
    _f("our_acquiring", "是否使用本行收单", "boolean", "收单结算"),
    _f("restock_day", "进货日", "enum", "收单结算", options=(
        ("mon", "周一"), ("tue", "周二"), ("wed", "周三"), ("thu", "周四"), ("fri", "周五"), ("sat", "周六"),
        ("sun", "周日"), ("irregular", "不固定"))),
    _f("restock_amount", "单次进货金额", "decimal", "收单结算", min_=0, max_=100000000, unit="元"),
    _f("loan_need", "有无融资需求", "boolean", "金融需求", required=True),
    _f("loan_amount_wanted", "意向融资金额", "decimal", "金融需求", min_=0, max_=100000000, unit="元"),
]
MICRO = [
    _f("legal_representative", "法定代表人", "string", "企业概况", required=True, max_length=50),
    _f("contact_person", "联系人", "string", "企业概况", max_length=50),
    _f("contact_phone", "联系电话", "phone", "企业概况", required=True),
    _f("industry", "所属行业", "enum", "企业概况", required=True, options=(
        ("agriculture", "农林牧渔"), ("manufacturing", "制造业"), ("construction", "建筑业"),
        ("wholesale_retail", "批发零售"), ("logistics", "交通物流"), ("catering_lodging", "住宿餐饮"),
        ("it_services", "信息技术"), ("other_services", "其他服务业"))),
    _f("established_on", "成立日期", "date", "企业概况"),
    _f("employees", "员工人数", "integer", "企业概况", required=True, min_=0, max_=100000, unit="人"),
    _f("main_business", "主营产品/业务", "text", "企业概况", max_length=500),
    _f("annual_revenue", "上年营业收入", "decimal", "经营财务", required=True, min_=0, max_=10000000, unit="万元"),
    _f("total_assets", "资产总额", "decimal", "经营财务", min_=0, max_=10000000, unit="万元"),
    _f("premises", "经营场所", "enum", "经营财务", options=(
        ("owned", "自有"), ("rented", "租赁"), ("park", "园区厂房"))),
    _f("premises_area_m2", "场地面积", "decimal", "经营财务", min_=0, max_=10000000, unit="㎡"),
    _f("main_bank", "主要结算银行", "enum", "经营财务", options=(("ours", "本行"), ("other", "他行"))),
    _f("payroll_service", "是否本行代发工资", "boolean", "经营财务"),
    _f("existing_financing", "现有融资余额", "decimal", "融资需求", min_=0, max_=10000000, unit="万元"),
    _f("financing_need", "有无融资需求", "boolean", "融资需求", required=True),
    _f("financing_amount", "意向融资金额", "decimal", "融资需求", min_=0, max_=10000000, unit="万元"),
    _f("financing_purpose", "融资用途", "enum", "融资需求", options=(
        ("working_capital", "流动资金"), ("equipment", "设备购置"), ("expansion", "扩大经营"), ("other", "其他"))),
    _f("collateral", "可提供担保方式", "multi_enum", "融资需求", options=(
        ("property", "房产抵押"), ("equipment", "设备抵押"), ("receivables", "应收账款质押"),
        ("guarantee", "保证担保"), ("credit", "信用"), ("none", "暂无"))),
]
BUILTIN = (
    ("farmer_standard", "farmer", "农户信息采集标准", FARMER),
    ("merchant_standard", "merchant", "商户信息采集标准", MERCHANT),
    ("micro_enterprise_standard", "micro_enterprise", "小微企业信息采集标准", MICRO),
)


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)]


def _user(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL" if nullable else "RESTRICT"),
                     nullable=nullable)


def upgrade() -> None:
    profile = postgresql.ENUM(name="profile_type", create_type=False)
    # one row per template version; editing inserts version n+1 and retires n (is_current = false)
    op.create_table(
        "profile_templates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("profile_type", profile, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("fields", postgresql.JSONB(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False, server_default="true"),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default="true"),
        sa.Column("is_builtin", sa.Boolean(), nullable=False, server_default="false"),
        _user("created_by"),
        *_timestamps(),
        sa.UniqueConstraint("code", "version", name="uq_profile_templates_code_version"),
        sa.CheckConstraint("is_current OR NOT is_active", name="only_current_active"),
    )
    op.create_index("uq_profile_templates_current", "profile_templates", ["code"], unique=True,
                    postgresql_where=sa.text("is_current"))
    # the template profiles of a type are filled against: at most one active per type
    op.create_index("uq_profile_templates_active_type", "profile_templates", ["profile_type"], unique=True,
                    postgresql_where=sa.text("is_active"))

    op.create_table(
        "customer_profiles",
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("profile_type", profile, nullable=False),
        sa.Column("template_id", sa.Integer(), sa.ForeignKey("profile_templates.id", ondelete="RESTRICT"),
                  nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("data", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        # values of phone-type fields, SM4-sealed ({key: number} as JSON); `data` holds their masks
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("completeness", sa.Numeric(5, 4), nullable=False),
        sa.Column("is_complete", sa.Boolean(), nullable=False),
        sa.Column("missing", postgresql.ARRAY(sa.String(40)), nullable=False, server_default="{}"),
        sa.Column("missing_required", postgresql.ARRAY(sa.String(40)), nullable=False, server_default="{}"),
        _user("filled_by"),
        sa.Column("filled_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("source", sa.String(10), nullable=False, server_default="pc"),
        *_timestamps(),
        sa.CheckConstraint("source IN ('mobile', 'pc', 'import')", name="source_known"),
        sa.CheckConstraint("completeness BETWEEN 0 AND 1", name="completeness_range"),
    )
    op.create_index("ix_customer_profiles_template", "customer_profiles", ["template_id"])
    # every saved revision (kept apart from the audit log so whoever sees the customer sees its history)
    op.create_table(
        "customer_profile_revisions",
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("revision", sa.Integer(), primary_key=True),
        sa.Column("profile_type", profile, nullable=False),
        sa.Column("template_id", sa.Integer(), sa.ForeignKey("profile_templates.id", ondelete="RESTRICT"),
                  nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("completeness", sa.Numeric(5, 4), nullable=False),
        sa.Column("missing", postgresql.ARRAY(sa.String(40)), nullable=False),
        _user("filled_by"),
        sa.Column("filled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
    )
    op.execute("""
        CREATE FUNCTION gm_profile_revision() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO customer_profile_revisions (customer_id, revision, profile_type, template_id, template_version,
                                                  data, sealed, completeness, missing, filled_by, filled_at, source)
          VALUES (NEW.customer_id, NEW.revision, NEW.profile_type, NEW.template_id, NEW.template_version, NEW.data,
                  NEW.sealed, NEW.completeness, NEW.missing, NEW.filled_by, NEW.filled_at, NEW.source);
          RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER customer_profiles_revision AFTER INSERT OR UPDATE OF revision ON customer_profiles "
               "FOR EACH ROW EXECUTE FUNCTION gm_profile_revision()")

    op.create_table(
        "profile_collection_tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("profile_type", profile, nullable=False),
        sa.Column("missing_fields", postgresql.ARRAY(sa.String(40)), nullable=False),
        _user("assignee_user_id"),
        sa.Column("status", sa.String(10), nullable=False, server_default="open"),
        sa.Column("batch_key", sa.String(36), nullable=False),
        sa.Column("note", sa.String(200), nullable=True),
        _user("created_by"),
        _user("closed_by"),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("status IN ('open', 'done', 'cancelled')", name="status_known"),
    )
    op.create_index("uq_profile_collection_tasks_open", "profile_collection_tasks", ["customer_id"], unique=True,
                    postgresql_where=sa.text("status = 'open'"))
    op.create_index("ix_profile_collection_tasks_assignee", "profile_collection_tasks", ["assignee_user_id", "status"])
    op.create_index("ix_profile_collection_tasks_batch", "profile_collection_tasks", ["batch_key"])

    op.create_table(
        "coverage_snapshots",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("level", sa.String(10), primary_key=True),
        sa.Column("key", sa.Integer(), primary_key=True),
        # the org that owns the entity (grid's org, the org itself, the manager's org): data scope
        sa.Column("org_id", sa.Integer(), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=True),
        sa.Column("name", sa.String(100), nullable=True),
        sa.Column("metrics", postgresql.JSONB(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("level IN ('grid', 'org', 'manager', 'total')", name="level_known"),
    )
    op.create_index("ix_coverage_snapshots_level_key", "coverage_snapshots", ["level", "key", "day"])

    # templates are bank-wide configuration (like the dictionary): readable by every user, written by
    # holders of profile_template:edit through the API; no row-level scope
    grant_app("profile_templates")
    for table in ("customer_profiles", "customer_profile_revisions", "profile_collection_tasks"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({THROUGH_CUSTOMER}) WITH CHECK ({THROUGH_CUSTOMER})")
        grant_app(table)
    snapshot_scope = (f"{SCOPE_ALL} OR org_id {IN_SCOPE_ORGS} "
                      f"OR (level = 'manager' AND key = (SELECT gm_user_id()))")
    op.execute("ALTER TABLE coverage_snapshots ENABLE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY coverage_snapshots_scope ON coverage_snapshots USING ({snapshot_scope}) "
               f"WITH CHECK ({snapshot_scope})")
    grant_app("coverage_snapshots")
    for seq in ("profile_templates_id_seq", "profile_collection_tasks_id_seq"):
        op.execute(f"GRANT USAGE ON SEQUENCE {seq} TO {app_role()}")
    audit_table("profile_templates")
    audit_table("customer_profiles", keys=("customer_id",), redact=("sealed",))
    audit_table("profile_collection_tasks")
    audit_table("coverage_snapshots", keys=("day", "level", "key"))

    for code, profile_type, name, fields in BUILTIN:
        op.execute(sa.text(
            "INSERT INTO profile_templates (code, version, profile_type, name, fields, is_builtin) "
            "VALUES (:c, 1, CAST(:p AS profile_type), :n, CAST(:f AS jsonb), true)"
        ).bindparams(c=code, p=profile_type, n=name, f=json.dumps(fields, ensure_ascii=False)))


def downgrade() -> None:
    for table in ("coverage_snapshots", "profile_collection_tasks", "customer_profile_revisions",
                  "customer_profiles", "profile_templates"):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS gm_profile_revision()")
