"""The request bodies of the service's endpoints (pydantic models; unknown keys are a 422).

The training bodies take every key of the config dataclasses, all optional; their values are
checked when merged into the service's defaults with ``load_config``.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from gapfill.config import UMAPConfig, Vec2TextConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _optional_fields_model(cls: type, name: str, exclude: tuple[str, ...] = ()) -> type[BaseModel]:
    """A request model with every field of the config dataclass ``cls``, all optional.

    Unknown keys are rejected (422); the dataclass's own checks run when the body is merged
    into the service's defaults with ``load_config``.
    """
    hints = typing.get_type_hints(cls)
    fields = {
        f.name: (hints[f.name] | None, Field(default=None, description=f.metadata.get("help")))
        for f in dataclasses.fields(cls)
        if f.name not in exclude
    }
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


UMAPRequest = _optional_fields_model(UMAPConfig, "UMAPRequest")
Vec2TextRequest = _optional_fields_model(Vec2TextConfig, "Vec2TextRequest", exclude=("embedder",))


class Document(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | int | None = None
    content: str | None = None
    embedding: list[float] | None = None


class InitializeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[Document] | None = Field(default=None, description="documents posted inline")
    path: str | None = Field(default=None, description="a JSONL/JSON/CSV file inside the data directory")
    text_field: str | None = Field(default=None, description="field holding the text (default: content, text, ...)")


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    compare_umap_learn: bool = Field(default=False, description="also fit umap-learn (~25 s compile + fit)")
    n_neighbors: int = Field(default=10, ge=1, le=100, description="neighbourhood of trustworthiness")
    vec2text_samples: int = Field(default=0, ge=0, le=200, description="documents to invert with vec2text")


class NameRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, description="a plain name: letters, digits, '.', '_', '-'")


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float = Field(strict=True, allow_inf_nan=False, description="map x coordinate")
    y: float = Field(strict=True, allow_inf_nan=False, description="map y coordinate")
    method: Literal["landing", "vec2text"] = Field(
        default="landing",
        description="landing: LM candidates from the neighbouring documents chosen and edited by where they land "
        "(needs only the map); vec2text: invert the decoder's embedding of the point",
    )
    max_seconds: float | None = Field(default=None, gt=0, le=600, description="time budget of the landing method")
    num_steps: int | None = Field(default=None, ge=0, le=10)
    beam_width: int | None = Field(default=None, ge=1, le=16)
    guided_search: bool | None = Field(default=None, description="run the embedding-guided search (default: config)")
    start_from_nearest: bool = Field(
        default=False, description="the document nearest to the decoded embedding competes as a starting hypothesis"
    )
    word_edits: bool = Field(
        default=True, description="word edits with the documents' vocabulary inside the correction steps"
    )
    rewrite: bool = Field(
        default=True,
        description="fluent rewrites by a plain instruction LM inside the steps, each step preferring fluent text",
    )
