"""The navigation tree a user may see."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from geo_core.users.models import Menu


def menus_by_parent(session: Session) -> dict[int | None, list[Menu]]:
    """Every menu, grouped by parent id, each group in display order."""
    children: dict[int | None, list[Menu]] = {}
    for m in session.scalars(select(Menu).order_by(Menu.sort_order, Menu.id)):
        children.setdefault(m.parent_id, []).append(m)
    return children


def menu_tree(session: Session, permissions: frozenset[str] | None) -> list[dict[str, Any]]:
    """Visible menus the permissions allow (None = all); groups left without children are dropped."""
    children = menus_by_parent(session)

    def build(parent_id: int | None) -> list[dict[str, Any]]:
        out = []
        for m in children.get(parent_id, []):
            if not m.is_visible or (permissions is not None and m.permission_code and
                                    m.permission_code not in permissions):
                continue
            node = {"id": m.id, "code": m.code, "name": m.name, "route": m.route, "icon": m.icon,
                    "children": build(m.id)}
            if node["route"] is None and not node["children"]:
                continue
            out.append(node)
        return out

    return build(None)
