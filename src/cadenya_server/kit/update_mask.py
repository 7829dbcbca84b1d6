"""PATCH semantics: which fields of a body an update changes.

With an `updateMask` (comma-separated paths such as
`metadata.name,spec.description`) exactly the named fields change, and a named
field missing from the body is reset to its default. Without one, the fields
present in the body change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BaseModel, Field
from pydantic.alias_generators import to_camel, to_snake

from cadenya_server.kit import labels as label_rules
from cadenya_server.kit.errors import InvalidArgument
from cadenya_server.kit.schemas import UpdateAccountResourceMetadata

FIELD = "updateMask"


def _camel(path: str) -> str:
    # Protobuf field masks may spell paths in snake_case or in JSON camelCase.
    return ".".join(to_camel(p) if "_" in p else p for p in path.split("."))


def mask_of(allowed: frozenset[str]) -> Any:
    """The type of an `updateMask` that may name these paths (camelCase or snake_case),
    separated by commas; the OpenAPI document states the same grammar."""
    spellings = sorted({p for path in allowed for p in (path, _snake(path))})
    token = "(?:" + "|".join(re.escape(p) for p in spellings) + ")"
    pattern = rf"^ *(?:{token} *(?:, *{token} *)*)?$"

    def check(mask: str) -> str:
        if not re.fullmatch(pattern, mask):
            raise ValueError(
                f"must be paths separated by commas, each one of {', '.join(sorted(allowed))}"
            )
        return mask

    return Annotated[
        str,
        AfterValidator(check),
        Field(
            max_length=1000,
            description="Comma-separated paths to change; without it, the fields present "
            f"in the body. Paths: {', '.join(sorted(allowed))}.",
            json_schema_extra={"pattern": pattern},
        ),
    ]


def named_means_given(*paths: str) -> dict[str, Any]:
    """The part of a request's JSON schema that says: a mask naming one of these paths must
    come with a value for it (the services refuse the default these fields would reset to)."""
    rules = []
    for path in paths:
        parent, _, name = path.partition(".")
        rules.append(
            {
                "if": {
                    "required": [FIELD],
                    "properties": {FIELD: {"pattern": rf"(^|,) *{re.escape(path)} *(,|$)"}},
                },
                "then": {
                    "required": [parent],
                    "properties": {
                        parent: {
                            "type": "object",
                            "required": [name],
                            "properties": {name: {"not": {"type": "null"}}},
                        }
                    },
                },
            }
        )
    return {"allOf": rules}


def _snake(path: str) -> str:
    return ".".join(to_snake(p) for p in path.split("."))


def _present(model: BaseModel, prefix: str = "") -> Iterator[str]:
    for name in model.model_fields_set:
        value = getattr(model, name)
        path = f"{prefix}{to_camel(name)}"
        if value is None:
            # `"spec": null` sends nothing to change.
            continue
        if isinstance(value, BaseModel):
            yield from _present(value, f"{path}.")
        else:
            yield path


def paths(mask: str, body: BaseModel, *, allowed: frozenset[str]) -> frozenset[str]:
    """The camelCase paths the update changes; 400 for a path outside `allowed`."""
    if mask.strip():
        named = {_camel(p.strip()) for p in mask.split(",") if p.strip()}
    else:
        named = {p for p in _present(body) if p != FIELD}
    unknown = sorted(named - allowed)
    if unknown:
        raise InvalidArgument.field(
            FIELD, f"{unknown[0]!r} cannot be updated; use {', '.join(sorted(allowed))}"
        )
    return frozenset(named)


class NamedResource(Protocol):
    """A stored resource with the caller's metadata (a workspace, an API key)."""

    name: str
    external_id: str
    labels: dict[str, str]


def apply_metadata(
    row: NamedResource, metadata: UpdateAccountResourceMetadata | None, paths: frozenset[str]
) -> None:
    """Set the metadata fields the paths name: a name may not be emptied, labels are checked."""
    metadata = metadata or UpdateAccountResourceMetadata()
    if "metadata.name" in paths:
        if not metadata.name:
            raise InvalidArgument.field("metadata.name", "must not be empty")
        row.name = metadata.name
    if "metadata.externalId" in paths:
        row.external_id = metadata.external_id
    if "metadata.labels" in paths:
        row.labels = label_rules.validate(metadata.labels)
