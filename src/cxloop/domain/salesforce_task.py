"""What a Salesforce task asks of Salesforce: object, action, key, record type, field mappings.

Pure data: the workflow engine renders and sends it; the doctor checks it against the org's
describe before anything is sent.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Action = Literal["insert", "update", "upsert", "delete"]
SourceType = Literal["text", "number", "boolean", "date", "datetime", "choice"]


class FieldMapping(BaseModel):
    """One Salesforce field ← piped text (a value from the response) or a constant."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
    value: str = Field(max_length=10_000, description="Piped text or a constant.")
    source_type: SourceType = Field(
        default="text", description="What the value holds, to check it suits the field's type."
    )
    constant: bool = Field(
        default=False, description="The value is a literal (checked against picklists and types)."
    )


class SalesforceTaskSpec(BaseModel):
    """The Salesforce side of a task."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="Salesforce task", max_length=200)
    object: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
    action: Action
    key_field: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
    record_type: str | None = Field(default=None, max_length=80, description="Name or Id.")
    mappings: list[FieldMapping] = Field(default_factory=list)

    @model_validator(mode="after")
    def _key_where_needed(self) -> SalesforceTaskSpec:
        if self.action == "upsert" and not self.key_field:
            raise ValueError("an upsert needs key_field: an external id field")
        if self.action in ("update", "delete") and not self.key_field:
            self.key_field = "Id"
        return self
