"""Domain errors. The API maps each class to one HTTP status; the message is safe to show users."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        errors: dict[str, Any] | list[Any] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.errors = errors
        self.detail = detail


class ValidationFailed(DomainError):
    """Input is well-formed but violates a rule; `errors` maps field -> messages."""

    status = 422
    code = "VALIDATION_FAILED"

    @classmethod
    def on(cls, field: str, message: str, **kwargs: Any) -> ValidationFailed:
        """The common case: one message about one field."""
        return cls(message, errors={field: [message]}, **kwargs)


class AuthenticationFailed(DomainError):
    status = 401
    code = "AUTHENTICATION_FAILED"


class PermissionDenied(DomainError):
    status = 403
    code = "PERMISSION_DENIED"


class NotFound(DomainError):
    """Also used for rows outside the caller's data scope: they do not exist for him."""

    status = 404
    code = "NOT_FOUND"


class Conflict(DomainError):
    status = 409
    code = "CONFLICT"


class InvalidGeometry(ValidationFailed):
    code = "INVALID_GEOMETRY"
