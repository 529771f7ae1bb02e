"""Sections of the customer 360 view that read other features' tables (registered into view360.SECTIONS).

Each one names the tables it needs; the registry answers "not installed" when one is missing. Columns are
picked from what exists, so the sections follow those features' migrations without importing their code
(dependencies stay one-way: this module only reads). Everything runs under the caller's row-level security.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text

from geo_core.customers.view360 import Context, first_of, jsonable, pick, quote, rows_of, section, unavailable


def listing(rows: list[dict[str, Any]], total: int, **extra: Any) -> dict[str, Any]:
    return {"available": True, "items": rows, "total": total, **extra}


def joined(ctx: Context, link: str, target: str, fk_candidates: Iterable[str], *,
           target_wanted: Iterable[str] | None, link_wanted: Iterable[str] = (),
           order: Iterable[str] = ("created_at", "id")) -> tuple[list[dict[str, Any]], int]:
    """Rows of `target` linked to the customer through `link` (link.customer_id, link.<fk> = target.id)."""
    fk = first_of(ctx, link, *fk_candidates)
    if fk is None or "id" not in ctx.columns(target):
        return [], 0
    t_cols = [c for c in pick(ctx, target, target_wanted) if c not in ("customer_id",)]
    l_cols = [c for c in pick(ctx, link, link_wanted) if c not in ("customer_id", fk)]  # as link_<name>
    cols = [f"t.{quote(c)}" for c in t_cols] + [f"l.{quote(c)} AS {quote('link_' + c)}" for c in l_cols]
    order_col = first_of(ctx, link, *order)
    order_sql = f" ORDER BY l.{quote(order_col)} DESC NULLS LAST" if order_col else ""
    base = f"FROM {quote(link)} l JOIN {quote(target)} t ON t.id = l.{quote(fk)} WHERE l.customer_id = :cid"
    args = {"cid": ctx.customer.id, "lim": ctx.limit}
    rows = [jsonable(dict(r)) for r in ctx.session.execute(
        text(f"SELECT {', '.join(cols)} {base}{order_sql} LIMIT :lim"), args).mappings()]
    total = ctx.session.scalar(text(f"SELECT count(*) {base}"), args) or 0
    return rows, int(total)


# ---------------------------------------------------------------- profile archive (建档), migration 0012


@section("profile_archive", "建档信息", tables=("customer_profiles",))
def profile_archive_section(ctx: Context) -> dict[str, Any]:
    """The filled profile (建档) with its completeness; values labelled by the template it was filled against
    (phone-type values are masks there, the numbers themselves are sealed apart and never read here)."""
    rows, _ = rows_of(ctx, "customer_profiles", order=("updated_at",), limit=1, wanted=(
        "profile_type", "template_id", "template_version", "revision", "data", "completeness", "is_complete",
        "missing", "missing_required", "filled_by", "filled_at", "source", "updated_at"))
    if not rows:
        return {"available": True, "profile": None, "completeness": None, "fields": []}
    row = rows[0]
    fields: list[dict[str, Any]] = []
    if row.get("template_id") and "fields" in ctx.columns("profile_templates"):
        template = ctx.session.execute(text("SELECT name, fields FROM profile_templates WHERE id = :t"),
                                       {"t": row["template_id"]}).first()
        data = row.get("data") or {}
        for spec in (template.fields if template else None) or []:
            options = {o["value"]: o["label"] for o in spec.get("options") or []}
            value = data.get(spec["key"])
            if isinstance(value, list):
                value = [options.get(v, v) for v in value]
            elif value in options:
                value = options[value]
            fields.append({"key": spec["key"], "label": spec.get("label"), "group": spec.get("group"),
                           "unit": spec.get("unit"), "required": spec.get("required", False),
                           "value": jsonable(value)})
        row["template_name"] = template.name if template else None
    row.pop("data", None)
    if row.get("filled_by"):
        row["filled_by_name"] = ctx.session.scalar(text("SELECT name FROM users WHERE id = :u"),
                                                   {"u": row["filled_by"]})
    return {"available": True, "profile": row, "completeness": row.get("completeness"), "fields": fields}


# ---------------------------------------------------------------- tags and groups, migration 0013


@section("tags", "客户标签", tables=("customer_tags", "tags"))
def tags_section(ctx: Context) -> dict[str, Any]:
    rows, total = joined(ctx, "customer_tags", "tags", ("tag_id",),
                         target_wanted=("id", "code", "name", "kind", "category", "color", "description"),
                         link_wanted=("source", "created_at", "expires_at"))
    return listing(rows, total)


@section("groups", "所属客群", tables=("customer_group_members", "customer_groups"))
def groups_section(ctx: Context) -> dict[str, Any]:
    """The groups whose member snapshot holds the customer (members are fixed when a group is approved)."""
    rows, total = joined(ctx, "customer_group_members", "customer_groups", ("group_id", "customer_group_id"),
                         target_wanted=("id", "code", "name", "kind", "status", "description", "org_id"),
                         link_wanted=("source", "status", "created_at", "added_at"))
    return listing(rows, total)


# ---------------------------------------------------------------- data feed, reminders, credit, migration 0015


@section("accounts", "账户（数据平台）", tables=("customer_accounts",))
def accounts_section(ctx: Context) -> dict[str, Any]:
    rows, total = rows_of(ctx, "customer_accounts", order=("balance", "id"),
                          wanted=("account_no", "product_code", "account_type", "balance", "currency", "opened_on",
                                  "status", "as_of"))
    for row in rows:  # an account number is as sensitive as a phone: show its tail only
        if row.get("account_no"):
            row["account_no"] = "****" + str(row["account_no"])[-4:]
    return listing(rows, total)


@section("loans", "贷款（数据平台）", tables=("customer_loans",))
def loans_section(ctx: Context) -> dict[str, Any]:
    rows, total = rows_of(ctx, "customer_loans", order=("due_date", "id"),
                          wanted=("loan_no", "product_code", "principal", "balance", "due_date", "overdue_amount",
                                  "overdue_days", "status", "as_of"))
    for row in rows:
        if row.get("loan_no"):
            row["loan_no"] = "****" + str(row["loan_no"])[-4:]
    return listing(rows, total)


@section("reminders", "提醒", tables=("reminders",))
def reminders_section(ctx: Context) -> dict[str, Any]:
    rows, total = rows_of(ctx, "reminders", order=("due_date", "id"),
                          wanted=("id", "kind", "title", "due_date", "status", "action_note", "done_at"))
    open_count = ctx.session.scalar(text("SELECT count(*) FROM reminders WHERE customer_id = :cid "
                                         "AND status::text = 'open'"), {"cid": ctx.customer.id}) \
        if "status" in ctx.columns("reminders") else None
    return listing(rows, total, open=open_count)


@section("events", "客户纪念日与自定义事件", tables=("customer_events",))
def events_section(ctx: Context) -> dict[str, Any]:
    rows, total = rows_of(ctx, "customer_events", order=("event_date", "id"),
                          wanted=("id", "kind", "title", "event_date", "calendar", "is_leap_month", "recurrence",
                                  "remind_days_before", "note"))
    return listing(rows, total)


@section("credit", "授信决策", tables=("credit_decisions",))
def credit_section(ctx: Context) -> dict[str, Any]:
    # raw_response stays out: it is the engine's full answer, kept for audit
    rows, total = rows_of(ctx, "credit_decisions", order=("created_at", "id"),
                          wanted=("id", "decision", "credit_limit", "rate", "valid_until", "reasons", "engine_ref",
                                  "created_at"))
    return listing(rows, total, latest=rows[0] if rows else None)


# ---------------------------------------------------------------- ownership history, migration 0016


@section("ownerships", "管户历史", tables=("customer_ownerships",))
def ownerships_section(ctx: Context) -> dict[str, Any]:
    """管户关系 history (written by a trigger on customers): manager, org, validity, who changed it and why."""
    rows, total = rows_of(ctx, "customer_ownerships", order=("valid_from", "id"))
    users = {r.get(k) for r in rows for k in ("owner_user_id", "changed_by") if r.get(k)}
    orgs = {r["org_id"] for r in rows if r.get("org_id")}
    names = dict(ctx.session.execute(text("SELECT id, name FROM users WHERE id = ANY(:ids)"),
                                     {"ids": list(users)}).all()) if users else {}
    org_names = dict(ctx.session.execute(text("SELECT id, name FROM orgs WHERE id = ANY(:ids)"),
                                         {"ids": list(orgs)}).all()) if orgs else {}
    for row in rows:  # names of users / orgs outside the caller's scope stay empty
        row["owner_name"] = names.get(row.get("owner_user_id"))
        row["changed_by_name"] = names.get(row.get("changed_by"))
        row["org_name"] = org_names.get(row.get("org_id"))
    return listing(rows, total)


# ---------------------------------------------------------------- imported lists (名单), migration 0010


@section("lists", "所在名单", tables=("customer_list_entries", "customer_import_batches"))
def lists_section(ctx: Context) -> dict[str, Any]:
    args = {"cid": ctx.customer.id, "lim": ctx.limit}
    base = ("FROM customer_list_entries e JOIN customer_import_batches b ON b.id = e.batch_id "
            "WHERE e.customer_id = :cid")
    rows = ctx.session.execute(text(
        "SELECT b.id AS batch_id, b.name, b.template_snapshot->>'name' AS template_name, b.status::text AS status, "
        f"b.created_at, e.row_no, e.matched {base} ORDER BY b.created_at DESC, e.row_no LIMIT :lim"), args).mappings()
    total = ctx.session.scalar(text(f"SELECT count(*) {base}"), args) or 0
    return listing([jsonable(dict(r)) for r in rows], int(total))


# ---------------------------------------------------------------- features not built yet


def _future(ctx: Context, table: str, order: Iterable[str]) -> dict[str, Any]:
    if "customer_id" not in ctx.columns(table):
        return unavailable("not_linked")
    rows, total = rows_of(ctx, table, order=order)
    return listing(rows, total)


@section("campaigns", "营销活动", tables=("campaign_targets",))
def campaigns_section(ctx: Context) -> dict[str, Any]:
    return _future(ctx, "campaign_targets", ("created_at", "id"))


@section("tasks", "营销任务", tables=("tasks",))
def tasks_section(ctx: Context) -> dict[str, Any]:
    return _future(ctx, "tasks", ("due_date", "created_at", "id"))


@section("visits", "走访记录", tables=("visits",))
def visits_section(ctx: Context) -> dict[str, Any]:
    return _future(ctx, "visits", ("check_in_at", "visited_at", "created_at", "id"))


@section("footprints", "足迹", tables=("footprints",))
def footprints_section(ctx: Context) -> dict[str, Any]:
    return _future(ctx, "footprints", ("recorded_at", "created_at", "id"))
