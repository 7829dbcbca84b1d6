"""Wire models: camelCase, every field present, and the shared metadata shape."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """A response or request body as it appears on the wire."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        # Responses always carry every field, so the OpenAPI document says so.
        json_schema_serialization_defaults_required=True,
    )


class RequestModel(WireModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class AccountResourceMetadata(WireModel):
    """Metadata of a resource that belongs to an account but not to a workspace."""

    id: str
    account_id: str
    name: str
    profile_id: str
    external_id: str = ""
    labels: dict[str, str] = {}
    created_at: str = ""


class Pagination(WireModel):
    next_cursor: str = ""
    total: int = 0
