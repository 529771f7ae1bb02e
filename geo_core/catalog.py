"""Built-in permissions, menus, roles and dictionary types, synced into the database idempotently.

The catalog lives in code so a fresh database and an upgraded one agree; admins can add their own
roles, menus and dictionary entries on top. `sync_catalog` never deletes what admins created.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo_core.dictionary.models import DictItem, DictType, ValueType
from geo_core.scope import DataScope
from geo_core.users.models import Menu, Permission, Role

PERMISSIONS: dict[str, str] = {
    "map:view": "查看网格地图",
    "org:read": "查看机构",
    "org:edit": "维护机构",
    "org:import": "导入机构",
    "org:export": "导出机构",
    "user:read": "查看用户",
    "user:edit": "维护用户",
    "user:import": "导入用户",
    "user:export": "导出用户",
    "user:reset_password": "重置用户密码",
    "role:read": "查看角色",
    "role:edit": "维护角色",
    "permission:read": "查看权限",
    "permission:edit": "维护权限",
    "menu:read": "查看菜单",
    "menu:edit": "维护菜单",
    "dict:read": "查看参数",
    "dict:edit": "维护参数",
    "device:read": "查看移动设备",
    "device:edit": "登记/审批/停用移动设备",
    "audit:read": "查看审计日志",
    "grid:read": "查看网格",
    "grid:edit": "维护网格（绘制、编辑、拆分、合并）",
    "grid:import": "导入网格",
    "grid:export": "导出网格",
    "grid:rate": "配置与执行网格评级",
    "grid:assign": "分配网格人员/移交网格",
    "assistant:read": "查看网格三员",
    "assistant:edit": "维护网格三员",
    "poi:read": "查看经济单元",
    "poi:edit": "维护经济单元",
    "place:search": "地图关键字搜索",
    "customer:read": "查看客户",
    "customer:edit": "维护客户（建档、编辑、纠偏）",
    "customer:assign": "批量分配客户网格/客户经理",
    "customer:export": "导出客户",
    "customer:reveal": "查看完整证件号码与电话（留痕）",
    "customer:merge": "客户查重与合并（含撤销合并）",
    "list:read": "查看名单",
    "profile_template:read": "查看建档模板",
    "profile_template:edit": "维护建档模板（全行）",
    "profile_task:edit": "发起/取消建档补录任务",
    "coverage:read": "查看覆盖指标（入格率、建档率、授信率、用信率）",
    "coverage:run": "生成覆盖指标日快照",
    "list:edit": "维护名单模板/导入名单",
    "reminder:read": "查看客户关怀提醒",
    "reminder:handle": "处理客户关怀提醒（填写处理情况）",
    "reminder:run": "手工生成客户关怀提醒",
    "feed:import": "导入大数据平台每日数据",
    "credit:read": "查看授信决策结果",
    "credit:request": "发起授信决策（预授信）",
    "tag:read": "查看客户标签",
    "tag:edit": "维护标签定义与规则（重新计算规则标签）",
    "tag:assign": "给客户打标签/去除标签",
    "group:read": "查看客群",
    "group:edit": "创建/修改/提交客群",
    "group:approve": "审核客群（通过/驳回）",
    "geocode:run": "地址解析（地理编码，批量解析客户地址）",
}

# Permissions introduced after the first release: synced into existing built-in roles on upgrade.
NEW_SINCE_CREATION = frozenset({"grid:read", "grid:edit", "grid:import", "grid:export", "grid:rate", "grid:assign",
                                "assistant:read", "assistant:edit", "poi:read", "poi:edit", "place:search",
                                "customer:read", "customer:edit", "customer:assign", "customer:export",
                                "customer:reveal", "list:read", "list:edit", "customer:merge",
                                "reminder:read", "reminder:handle", "reminder:run", "feed:import", "credit:read",
                                "credit:request"})

# Profiles (建档) and coverage indicators: templates are bank-wide, edited by the head office only
PROFILE_PERMISSIONS = frozenset({"profile_template:read", "profile_template:edit", "profile_task:edit",
                                 "coverage:read", "coverage:run"})
NEW_SINCE_CREATION = NEW_SINCE_CREATION | PROFILE_PERMISSIONS

# Tags and customer groups (客群): granted to the built-in roles below (admins hold all)
TAG_GROUP_PERMISSIONS = frozenset({"tag:read", "tag:edit", "tag:assign", "group:read", "group:edit", "group:approve"})
NEW_SINCE_CREATION = NEW_SINCE_CREATION | TAG_GROUP_PERMISSIONS
# Geocoding (地址解析) of customers in the caller's scope: leaders and account managers
GEOCODE_PERMISSIONS = frozenset({"geocode:run"})
NEW_SINCE_CREATION = NEW_SINCE_CREATION | GEOCODE_PERMISSIONS
GEOCODE_ROLES = frozenset({"branch_leader", "sub_branch_leader", "account_manager"})
TAG_GROUP_GRANTS = {
    "branch_leader": TAG_GROUP_PERMISSIONS,
    "sub_branch_leader": frozenset({"tag:read", "tag:edit", "tag:assign", "group:read", "group:edit"}),
    "account_manager": frozenset({"tag:read", "tag:assign", "group:read", "group:edit"}),
    "grid_assistant": frozenset({"tag:read"}),
}

READ_ONLY = {"map:view", "grid:read", "org:read", "user:read", "role:read", "permission:read", "menu:read", "dict:read"}
# Held by every built-in role: POIs are public reference data, keyword search is a map tool.
EVERYONE = frozenset({"poi:read", "place:search"})
# what leaders and managers hold of the profile / coverage permissions (admins hold all)
LEADER_BASE = READ_ONLY | EVERYONE | {"profile_template:read", "profile_task:edit", "coverage:read"}
MANAGER_BASE = EVERYONE | {"profile_template:read", "coverage:read"}


@dataclass(frozen=True)
class MenuSpec:
    code: str
    name: str
    route: str | None = None
    permission: str | None = None
    icon: str | None = None
    children: tuple[MenuSpec, ...] = ()


MENUS: tuple[MenuSpec, ...] = (
    MenuSpec("home", "首页", "/app", icon="home"),
    MenuSpec("map", "网格地图", "/app/map", "map:view", icon="map"),
    MenuSpec("grids", "网格管理", "/app/grids", "grid:read", icon="grid"),
    MenuSpec("grid_balance", "网格平衡", "/app/grids/balance", "grid:assign", icon="team"),
    MenuSpec("grid_assistants", "网格三员", "/app/grids/assistants", "assistant:edit", icon="user"),
    MenuSpec(
        "customers",
        "客户管理",
        icon="customer",
        children=(
            MenuSpec("customers.list", "客户列表", "/app/customers", "customer:read", icon="customer"),
            MenuSpec("customers.import", "名单导入", "/app/customers/import", "list:edit", icon="book"),
            MenuSpec("customers.imports", "导入批次", "/app/customers/imports", "list:read", icon="audit"),
            MenuSpec("customers.groups", "客群管理", "/app/customers/groups", "group:read", icon="team"),
            MenuSpec("customers.tags", "标签管理", "/app/customers/tags", "tag:read", icon="flag"),
            MenuSpec("customers.duplicates", "重复客户", "/app/customers/duplicates", "customer:merge", icon="team"),
            MenuSpec("customers.reminders", "客户提醒", "/app/customers/reminders", "reminder:read", icon="task"),
            MenuSpec("customers.coverage", "建档与覆盖", "/app/customers/coverage", "coverage:read", icon="audit"),
            MenuSpec("customers.profile_templates", "建档模板", "/app/customers/profile-templates",
                     "profile_template:edit", icon="book"),
            MenuSpec("customers.profile_tasks", "建档任务", "/app/customers/profile-tasks", "customer:read",
                     icon="task"),
        ),
    ),
    MenuSpec(
        "system",
        "系统管理",
        icon="settings",
        children=(
            MenuSpec("system.orgs", "机构管理", "/app/system/orgs", "org:read"),
            MenuSpec("system.users", "用户管理", "/app/system/users", "user:read"),
            MenuSpec("system.roles", "角色管理", "/app/system/roles", "role:read"),
            MenuSpec("system.permissions", "权限管理", "/app/system/permissions", "permission:read"),
            MenuSpec("system.menus", "菜单管理", "/app/system/menus", "menu:read"),
            MenuSpec("system.dict", "参数设置", "/app/system/dict", "dict:read"),
            MenuSpec("system.devices", "移动设备管理", "/app/system/devices", "device:read"),
            MenuSpec("system.audit", "审计日志", "/app/system/audit", "audit:read"),
        ),
    ),
)


@dataclass(frozen=True)
class RoleSpec:
    code: str
    name: str
    data_scope: DataScope
    permissions: frozenset[str]


ALL = frozenset(PERMISSIONS)
ROLES: tuple[RoleSpec, ...] = (
    RoleSpec("admin", "系统管理员", DataScope.all, ALL),
    RoleSpec(
        "branch_leader",
        "支行行长",
        DataScope.org_subtree,
        frozenset(LEADER_BASE | {"user:edit", "user:export", "user:import", "device:read", "device:edit",
                                          "org:export", "audit:read", "user:reset_password", "grid:edit",
                                          "grid:import", "grid:export", "grid:rate", "grid:assign", "assistant:read",
                                          "assistant:edit", "poi:edit", "customer:read", "customer:edit",
                                          "customer:assign", "customer:export", "customer:reveal", "list:read",
                                          "list:edit", "customer:merge", "reminder:read", "reminder:handle",
                                          "credit:read", "credit:request"}),
    ),
    RoleSpec(
        "sub_branch_leader",
        "二级支行/网点负责人",
        DataScope.org_subtree,
        frozenset(LEADER_BASE | {"user:export", "device:read", "device:edit", "grid:edit", "grid:export",
                                          "grid:assign", "assistant:read", "assistant:edit", "poi:edit",
                                          "customer:read", "customer:edit", "customer:assign", "list:read",
                                          "list:edit", "reminder:read", "reminder:handle", "credit:read",
                                          "credit:request"}),
    ),
    RoleSpec("account_manager", "客户经理", DataScope.self,
             frozenset(MANAGER_BASE | {"map:view", "org:read", "dict:read", "grid:read", "assistant:read",
                                   "customer:read", "customer:edit", "list:read", "reminder:read",
                                   "reminder:handle", "credit:read", "credit:request"})),
    RoleSpec("grid_assistant", "网格协管员", DataScope.self,
             frozenset(EVERYONE | {"map:view", "dict:read", "grid:read", "customer:read"} | {"profile_template:read"})),
)
ROLES = tuple(replace(r, permissions=r.permissions | TAG_GROUP_GRANTS.get(r.code, frozenset())) for r in ROLES)
ROLES = tuple(replace(r, permissions=r.permissions | GEOCODE_PERMISSIONS) if r.code in GEOCODE_ROLES else r
              for r in ROLES)

DICT_TYPES: tuple[tuple[str, str, ValueType, tuple[tuple[str, str, str | None], ...]], ...] = (
    ("product_status", "产品状态", ValueType.string,
     (("on_sale", "在售", None), ("suspended", "暂停销售", None), ("retired", "已下架", None))),
    ("product_category", "产品类别", ValueType.string,
     (("deposit", "存款", None), ("loan", "贷款", None), ("wealth", "理财", None), ("insurance", "保险", None),
      ("card", "银行卡", None), ("payment", "支付结算", None))),
    ("product_flag", "产品标识", ValueType.string,
     (("new", "新品", None), ("hot", "热销", None), ("rural", "惠农", None))),
    ("investment_direction", "投资方向", ValueType.string,
     (("agriculture", "农业", None), ("manufacturing", "制造业", None), ("commerce", "商贸流通", None),
      ("services", "服务业", None))),
    ("sales_target", "销售对象", ValueType.string,
     (("person", "个人", None), ("company", "对公", None), ("micro", "小微企业", None))),
    ("settlement_currency", "结算币种", ValueType.string,
     (("CNY", "人民币", "156"), ("USD", "美元", "840"), ("HKD", "港币", "344"))),
    ("channel", "渠道设置", ValueType.string,
     (("outlet", "网点柜面", None), ("mobile_banking", "手机银行", None), ("e_satchel", "电子挎包", None),
      ("wechat", "微信银行", None), ("atm", "自助设备", None))),
    ("large_change_threshold", "大额变动阈值(元)", ValueType.decimal, (("default", "默认", "500000"),)),
)


def _sync_menus(session: Session, specs: tuple[MenuSpec, ...], parent: Menu | None) -> None:
    for order, spec in enumerate(specs):
        menu = session.scalar(select(Menu).where(Menu.code == spec.code))
        if menu is None:
            menu = Menu(code=spec.code)
            session.add(menu)
        menu.name, menu.route, menu.icon = spec.name, spec.route, spec.icon
        menu.permission_code, menu.sort_order = spec.permission, order * 10
        menu.parent_id = parent.id if parent else None
        session.flush()
        _sync_menus(session, spec.children, menu)


def sync_catalog(session: Session) -> None:
    """Upsert built-in permissions, menus, roles and dictionary types (idempotent)."""
    perms = {p.code: p for p in session.scalars(select(Permission))}
    for code, name in PERMISSIONS.items():
        if code not in perms:
            perms[code] = Permission(code=code, name=name)
            session.add(perms[code])
        else:
            perms[code].name = name
    session.flush()
    _sync_menus(session, MENUS, None)
    for spec in ROLES:
        role = session.scalar(select(Role).where(Role.code == spec.code))
        if role is None:
            role = Role(code=spec.code, name=spec.name, data_scope=spec.data_scope, is_builtin=True)
            role.permissions = [perms[c] for c in sorted(spec.permissions)]
            session.add(role)
        elif role.is_builtin:
            # permissions added to the catalog later reach the built-in roles; admin removals of
            # older permissions are not undone (only codes introduced after the role was created)
            held = {p.code for p in role.permissions}
            role.permissions += [perms[c] for c in sorted(spec.permissions - held) if c in NEW_SINCE_CREATION]
    for code, name, value_type, items in DICT_TYPES:
        dtype = session.scalar(select(DictType).where(DictType.code == code))
        if dtype is None:
            dtype = DictType(code=code, name=name, value_type=value_type, is_system=True)
            dtype.items = [
                DictItem(code=c, label=label, value=value, sort_order=i * 10)
                for i, (c, label, value) in enumerate(items)
            ]
            session.add(dtype)
    session.flush()
