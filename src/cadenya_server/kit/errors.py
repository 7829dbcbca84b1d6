"""The error tree of the API and its one mapping to the google.rpc Status shape."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


class Code(IntEnum):
    """The google.rpc codes this server answers with."""

    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class ApiError(Exception):
    """An error the client is meant to see: a code, an HTTP status and a message."""

    code: Code = Code.INTERNAL
    http_status: int = 500

    def __init__(
        self,
        message: str,
        *,
        violations: list[FieldViolation] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.violations = violations or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if self.violations:
            details.append(
                {
                    "@type": BAD_REQUEST_TYPE,
                    "fieldViolations": [
                        {"field": v.field, "description": v.description} for v in self.violations
                    ],
                }
            )
        return {"code": int(self.code), "message": self.message, "details": details}


class InvalidArgument(ApiError):
    code = Code.INVALID_ARGUMENT
    http_status = 400

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """A bad value for one named field."""
        return cls(
            f"invalid {field}: {description}", violations=[FieldViolation(field, description)]
        )


class PayloadTooLarge(InvalidArgument):
    http_status = 413


class FailedPrecondition(ApiError):
    code = Code.FAILED_PRECONDITION
    http_status = 400


class ResourceExhausted(ApiError):
    """A rate limit or quota that waiting relieves: 429 with `Retry-After` in seconds."""

    code = Code.RESOURCE_EXHAUSTED
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})


class Unauthenticated(ApiError):
    code = Code.UNAUTHENTICATED
    http_status = 401

    def __init__(self, message: str = "missing or invalid credentials") -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="cadenya"'})


class PermissionDenied(ApiError):
    code = Code.PERMISSION_DENIED
    http_status = 403


class NotFound(ApiError):
    code = Code.NOT_FOUND
    http_status = 404


class AlreadyExists(ApiError):
    code = Code.ALREADY_EXISTS
    http_status = 409


class MethodNotAllowed(ApiError):
    code = Code.UNIMPLEMENTED
    http_status = 405


class Unavailable(ApiError):
    code = Code.UNAVAILABLE
    http_status = 503

    def __init__(self, message: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


class Internal(ApiError):
    code = Code.INTERNAL
    http_status = 500
