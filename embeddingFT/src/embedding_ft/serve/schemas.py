"""The request bodies (pydantic models; an unknown key, a wrong type or malformed JSON is a 422).

The size limits (texts per request, characters per text, ``top_k``) are the server's settings,
checked by the routes (413), not here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from embedding_ft.backends import BACKENDS


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings``, as OpenAI's (token-id inputs are not taken: texts only)."""

    model_config = ConfigDict(extra="forbid")
    input: str | list[str] = Field(description="a text or a list of texts (none empty)")
    model: str = Field(description="the served model's id (GET /v1/models)")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="float: JSON numbers; base64: little-endian float32 bytes, base64-encoded"
    )
    dimensions: int | None = Field(
        default=None, ge=1, description="keep the first N dimensions (Matryoshka) and renormalise to unit length"
    )
    user: str | None = Field(default=None, description="accepted and ignored (OpenAI's end-user id)")


class SearchRequest(BaseModel):
    """``POST /search``."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, description="the query text")
    top_k: int = Field(default=10, ge=1, description="hits to return")
    hybrid: bool = Field(default=False, description="fuse BM25 and dense with the index's fusion setting")


class ReloadRequest(BaseModel):
    """``POST /admin/reload``: the new index (default: the one in use, read again) and, optionally, its model."""

    model_config = ConfigDict(extra="forbid")
    index: str | None = Field(default=None, description="the index folder to serve")
    model: str | None = Field(default=None, description="must be the index's model (checked)")
    backend: Literal[BACKENDS] | None = Field(default=None, description="must be the index's back end (checked)")  # type: ignore[valid-type]
