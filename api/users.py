"""Users (用户管理): CRUD, search, roles, password reset, unlock, CSV/XLSX import and export."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, ExportArgs, PageArgs, db, page_body, principal, requires, settings
from api.files import EXPORT_DOC, FileUpload, ImportResult, export_response, uploaded_file
from geo_core.orgs.models import Org
from geo_core.users import service
from geo_core.users.models import UserStatus

blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="用户管理")
STATUSES = [s.value for s in UserStatus]
USERNAME = validate.Regexp(r"^[A-Za-z0-9_.@-]{2,64}$", error="用户名为 2-64 位字母、数字或 _.@-")


class UserSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    username = fields.String(required=True, validate=USERNAME)
    employee_no = fields.String(allow_none=True, validate=validate.Length(max=32))
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    phone = fields.String(allow_none=True, validate=validate.Regexp(r"^[0-9+\- ]{3,32}$", error="电话号码格式错误"))
    email = fields.Email(allow_none=True)
    org_id = fields.Integer(required=True, validate=validate.Range(min=1))
    org_name = fields.String(dump_only=True)
    status = fields.String(load_default="active", validate=validate.OneOf(STATUSES))
    roles = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list)
    role_names = fields.List(fields.String(), dump_only=True)
    password = fields.String(load_only=True, validate=validate.Length(max=128))
    locked_until = fields.DateTime(dump_only=True, allow_none=True)
    last_login_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class UserUpdateSchema(UserSchema):
    """PATCH: only the fields sent are changed (no defaults are filled in)."""

    status = fields.String(validate=validate.OneOf(STATUSES))
    roles = fields.List(fields.String(validate=validate.Length(max=64)))

    class Meta:
        exclude = ("password",)


class UserPage(BaseSchema):
    items = fields.List(fields.Nested(UserSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class UserListArgs(PageArgs):
    org_id = fields.Integer(validate=validate.Range(min=1), metadata={"description": "org and its subtree"})
    status = fields.String(validate=validate.OneOf(STATUSES))
    role = fields.String(validate=validate.Length(max=64))


class UserExportArgs(ExportArgs):
    org_id = fields.Integer(validate=validate.Range(min=1))
    status = fields.String(validate=validate.OneOf(STATUSES))
    role = fields.String(validate=validate.Length(max=64))


class ResetPasswordArgs(BaseSchema):
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))


def dump(user: Any) -> dict[str, Any]:
    org = db().get(Org, user.org_id)
    data = {c: getattr(user, c) for c in ("id", "username", "employee_no", "name", "phone", "email", "org_id",
                                          "locked_until", "last_login_at", "created_at")}
    return {**data, "status": user.status.value, "org_name": org.name if org else None,
            "roles": [r.code for r in user.roles], "role_names": [r.name for r in user.roles]}


@blp.route("")
class Users(MethodView):
    @requires("user:read")
    @blp.arguments(UserListArgs, location="query")
    @blp.response(200, UserPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List users in my data scope (search username, name, employee no., phone)"""
        return page_body(service.list_users(db(), **args), dump)

    @requires("user:edit")
    @blp.arguments(UserSchema)
    @blp.response(201, UserSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a user in an org of my scope, with roles I may grant"""
        return dump(service.create_user(db(), principal(), data, iterations=settings().pbkdf2_iterations))


@blp.route("/<int:user_id>")
class UserById(MethodView):
    @requires("user:read")
    @blp.response(200, UserSchema)
    def get(self, user_id: int) -> dict[str, Any]:
        """One user (404 if outside my scope)"""
        return dump(service.get_user(db(), user_id))

    @requires("user:edit")
    @blp.arguments(UserUpdateSchema(partial=True))
    @blp.response(200, UserSchema)
    def patch(self, data: dict[str, Any], user_id: int) -> dict[str, Any]:
        """Update a user (profile, org, status, roles)"""
        return dump(service.update_user(db(), principal(), user_id, data))

    @requires("user:edit")
    @blp.response(204)
    def delete(self, user_id: int) -> None:
        """Delete a user (refused if business data refers to him: disable instead)"""
        service.delete_user(db(), principal(), user_id)


@blp.route("/<int:user_id>/password")
class UserPassword(MethodView):
    @requires("user:reset_password")
    @blp.arguments(ResetPasswordArgs)
    @blp.response(204)
    def post(self, args: dict[str, Any], user_id: int) -> None:
        """Reset a user's password (also unlocks the account)"""
        service.reset_password(db(), principal(), user_id, args["password"], iterations=settings().pbkdf2_iterations)


@blp.route("/<int:user_id>/unlock")
class UserUnlock(MethodView):
    @requires("user:edit")
    @blp.response(200, UserSchema)
    def post(self, user_id: int) -> dict[str, Any]:
        """Unlock an account locked by failed logins"""
        return dump(service.unlock_user(db(), user_id))


@blp.route("/export")
class UserExport(MethodView):
    @requires("user:export")
    @blp.arguments(UserExportArgs, location="query")
    @blp.doc(**EXPORT_DOC)
    def get(self, args: dict[str, Any]):  # noqa: ANN201
        """Export users in my scope as CSV or XLSX"""
        fmt = args.pop("format")
        return export_response(fmt, service.COLUMNS, service.export_rows(db(), **args), "users")


@blp.route("/import")
class UserImport(MethodView):
    @requires("user:import")
    @blp.arguments(FileUpload, location="files")
    @blp.response(200, ImportResult)
    @blp.alt_response(422, description="Rejected: per-row errors, nothing written")
    def post(self, _files: dict[str, Any]) -> dict[str, int]:
        """Import users from CSV/XLSX (OA/HR sync: upsert by username; all rows or none)"""
        filename, data = uploaded_file()
        return service.import_users(db(), principal(), filename, data, iterations=settings().pbkdf2_iterations)
