"""The customer list of the 客户管理 page: the filters of `service.select_customers` plus column sorting and
the display names of owner, grid and org (one query, under the caller's row-level security)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from geo_core.customers.models import Customer
from geo_core.customers.service import Keys, select_customers
from geo_core.grids.models import Grid
from geo_core.orgs.models import Org
from geo_core.paging import MAX_PAGE_SIZE, Page
from geo_core.users.models import User

Owner = aliased(User, name="owner")

# sort key -> column; "-key" sorts descending. Names sort by their Chinese collation of the database.
SORTS: dict[str, Any] = {
    "id": Customer.id,
    "name": Customer.name,
    "customer_no": Customer.customer_no,
    "kind": Customer.kind,
    "category": Customer.category,
    "owner": Owner.name,
    "grid": Grid.code,
    "org": Org.code,
    "deposit_balance": Customer.deposit_balance,
    "loan_balance": Customer.loan_balance,
    "updated_at": Customer.updated_at,
    "created_at": Customer.created_at,
}
SORT_CHOICES = sorted([*SORTS, *(f"-{k}" for k in SORTS)])

ROW_FIELDS = ("id", "name", "customer_no", "industry", "address", "id_number_mask", "uscc_mask", "phone_mask",
              "owner_user_id", "org_id", "grid_id", "deposit_balance", "loan_balance", "credit_limit",
              "holdings_as_of", "updated_at", "created_at")
ENUM_FIELDS = ("kind", "category", "profile_type", "location_source", "status")


def _row(customer: Customer, owner_name: str | None, grid_code: str | None, grid_name: str | None,
         org_name: str | None) -> dict[str, Any]:
    data = {f: getattr(customer, f) for f in ROW_FIELDS}
    for f in ENUM_FIELDS:
        value = getattr(customer, f)
        data[f] = getattr(value, "value", value)
    return {**data, "has_point": customer.geom is not None, "owner_name": owner_name, "grid_code": grid_code,
            "grid_name": grid_name, "org_name": org_name, "grid_overridden": customer.grid_override_by is not None}


def list_directory(session: Session, keys: Keys, *, sort: str | None = None, page: int = 1, page_size: int = 20,
                   view: str = "ownership", **filters: Any) -> Page[dict[str, Any]]:
    """A page of customers with names, in the view's order (管户: by owner, 网格: by grid) unless `sort`."""
    page, page_size = max(page, 1), min(max(page_size, 1), MAX_PAGE_SIZE)
    base = select_customers(keys, view=view, **filters)
    total = session.scalar(select(func.count()).select_from(base.order_by(None).subquery())) or 0
    stmt = (base.add_columns(Owner.name, Grid.code, Grid.name, Org.name)
            .outerjoin(Owner, Owner.id == Customer.owner_user_id)
            .outerjoin(Grid, Grid.id == Customer.grid_id)
            .outerjoin(Org, Org.id == Customer.org_id))
    if sort:
        column = SORTS[sort.lstrip("-")]
        ordered = column.desc().nulls_last() if sort.startswith("-") else column.asc().nulls_last()
        stmt = stmt.order_by(None).order_by(ordered, Customer.id)
    elif view == "ownership":
        stmt = stmt.order_by(None).order_by(Owner.name.asc().nulls_last(), Customer.owner_user_id, Customer.id)
    else:
        stmt = stmt.order_by(None).order_by(Grid.code.asc().nulls_last(), Customer.id)
    rows = session.execute(stmt.limit(page_size).offset((page - 1) * page_size)).all()
    return Page([_row(*r) for r in rows], total, page, page_size)
