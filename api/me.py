"""The logged-in user: profile, permissions, menu tree, own password."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, db, principal, requires, settings
from geo_core.orgs.service import get_org
from geo_core.users import service as users
from geo_core.users.menus import menu_tree

blp = Blueprint("me", __name__, url_prefix="/api/v1/me", description="当前用户")


class OrgBrief(BaseSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    level = fields.String()


class RoleBrief(BaseSchema):
    code = fields.String()
    name = fields.String()
    data_scope = fields.String()


class MeSchema(BaseSchema):
    id = fields.Integer()
    username = fields.String()
    employee_no = fields.String(allow_none=True)
    name = fields.String()
    phone = fields.String(allow_none=True)
    org = fields.Nested(OrgBrief)
    roles = fields.List(fields.Nested(RoleBrief))
    permissions = fields.List(fields.String())
    data_scope = fields.String()
    client = fields.String()


class MenuNode(BaseSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    route = fields.String(allow_none=True)
    icon = fields.String(allow_none=True)
    children = fields.List(fields.Nested(lambda: MenuNode()))


class PasswordArgs(BaseSchema):
    old_password = fields.String(required=True, validate=validate.Length(min=1, max=128))
    new_password = fields.String(required=True, validate=validate.Length(min=1, max=128))


@blp.route("")
class Me(MethodView):
    @requires()
    @blp.response(200, MeSchema)
    def get(self) -> dict[str, Any]:
        """Who am I: profile, organisation, roles, permissions and data scope"""
        p = principal()
        user = users.get_user(db(), p.user_id)
        return {"id": user.id, "username": user.username, "employee_no": user.employee_no, "name": user.name,
                "phone": user.phone, "org": get_org(db(), user.org_id), "roles": user.roles,
                "permissions": sorted(p.permissions), "data_scope": p.scope.value, "client": p.client}


@blp.route("/menus")
class MyMenus(MethodView):
    @requires()
    @blp.response(200, MenuNode(many=True))
    def get(self) -> list[dict[str, Any]]:
        """The menu tree this user's permissions allow"""
        return menu_tree(db(), principal().permissions)


@blp.route("/password")
class MyPassword(MethodView):
    @requires()
    @blp.arguments(PasswordArgs)
    @blp.response(204)
    def post(self, args: dict[str, Any]) -> None:
        """Change my password"""
        users.change_own_password(db(), principal(), args["old_password"], args["new_password"],
                                  iterations=settings().pbkdf2_iterations)
