"""Login (password / SSO), token refresh and logout."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, db, principal, public, requires, settings, use_system_context
from geo_core.auth import service
from geo_core.errors import DomainError

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="登录、令牌刷新、退出、单点登录")


class LoginArgs(BaseSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128), load_only=True)
    client = fields.String(load_default="web", validate=validate.OneOf(service.CLIENTS))
    device_id = fields.String(load_default=None, validate=validate.Length(min=4, max=128))
    device_model = fields.String(load_default=None, validate=validate.Length(max=100))
    platform = fields.String(load_default=None, validate=validate.Length(max=32))


class SsoArgs(BaseSchema):
    token = fields.String(required=True, validate=validate.Length(min=10, max=8192))
    client = fields.String(load_default="web", validate=validate.OneOf(service.CLIENTS))
    device_id = fields.String(load_default=None, validate=validate.Length(min=4, max=128))


class RefreshArgs(BaseSchema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=10, max=200))


class TokenUser(BaseSchema):
    id = fields.Integer()
    username = fields.String()
    name = fields.String()
    org_id = fields.Integer()


class TokenResponse(BaseSchema):
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer(metadata={"description": "access token lifetime in seconds"})
    user = fields.Nested(TokenUser)


def _tokens(result: service.LoginResult) -> dict[str, Any]:
    return {"access_token": result.access_token, "refresh_token": result.refresh_token, "token_type": "Bearer",
            "expires_in": result.expires_in, "user": result.user}


def _commit_then(func, *args, **kwargs):  # noqa: ANN001, ANN202
    """Failed logins still persist (failure counters, lockout, device requests, audit rows)."""
    session = use_system_context()
    try:
        return func(session, settings(), *args, **kwargs)
    except DomainError:
        session.commit()
        raise


@blp.route("/login")
class Login(MethodView):
    @public
    @blp.arguments(LoginArgs)
    @blp.response(200, TokenResponse)
    @blp.alt_response(401, description="Bad credentials")
    @blp.alt_response(403, description="Account locked/disabled, or mobile device not registered/approved")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Log in with username and password

        A mobile client (`client=mobile`) must present a registered, approved `device_id`. After
        repeated failures the account is locked for a while."""
        info = {k: args[k] for k in ("device_model", "platform") if args.get(k)}
        result = _commit_then(
            service.login_with_password, username=args["username"], password=args["password"],
            client=args["client"], device_id=args.get("device_id"), client_ip=g.client_ip, device_info=info,
        )
        return _tokens(result)


@blp.route("/sso")
class SsoLogin(MethodView):
    @public
    @blp.arguments(SsoArgs)
    @blp.response(200, TokenResponse)
    @blp.alt_response(401, description="Token invalid, expired, or for an unknown user")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Log in with a signed token from the e-satchel / OA (single sign-on)

        The token is a JWT signed by the bank's identity provider (RS256/ES256), verified against the
        configured public key, issuer and audience; `sub` is the employee number."""
        result = _commit_then(service.login_with_sso, token=args["token"], client=args["client"],
                              device_id=args.get("device_id"), client_ip=g.client_ip)
        return _tokens(result)


@blp.route("/refresh")
class Refresh(MethodView):
    @public
    @blp.arguments(RefreshArgs)
    @blp.response(200, TokenResponse)
    @blp.alt_response(401, description="Refresh token invalid, rotated or expired")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Exchange a refresh token for new tokens (the refresh token rotates)"""
        return _tokens(_commit_then(service.refresh_tokens, args["refresh_token"]))


@blp.route("/logout")
class Logout(MethodView):
    @requires()
    @blp.response(204)
    def post(self) -> None:
        """Log out: the session and all its tokens stop working"""
        import uuid

        service.logout(db(), uuid.UUID(principal().session_id))
