"""How a recipe names a model, parsed once: `fake`, HTTP endpoints, or a model loaded in this process.

A `ModelSpec` is the text written in the recipe (it is a `str`, so it serializes, hashes and prints as
written) plus what that text means: its `kind`, the endpoint URLs of an HTTP spec and the latency of a
fake one. Every place that needs to know what kind of model a spec is reads `kind`; nothing else looks
at the text.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

HTTP_SCHEMES = ("http://", "https://")
FAKE = "fake"


class ModelKind(str, Enum):
    FAKE = "fake"
    """The in-package deterministic fake teacher (`fake`, or `fake:SECONDS` with a latency per call)."""
    HTTP = "http"
    """One or more OpenAI-compatible endpoints (`http(s)://host:port/v1`, comma separated)."""
    LOCAL = "local"
    """A model loaded in this process: `default`, a Hugging Face model folder or a GGUF file."""


class ModelSpec(str):
    """A model spec as written, with its parsed meaning. Raises ValueError for a spec that is none of
    the kinds (a malformed `fake:` latency, URLs mixed with paths, an empty spec)."""

    kind: ModelKind
    urls: tuple[str, ...]
    """The endpoints of an HTTP spec, in order (empty otherwise)."""
    fake_latency_s: float
    """Seconds the fake teacher waits per call (0 unless `fake:SECONDS`)."""

    def __new__(cls, text: str) -> ModelSpec:
        if isinstance(text, ModelSpec):
            return text
        spec = str(text).strip()
        self = super().__new__(cls, spec)
        self.urls, self.fake_latency_s = (), 0.0
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        if not spec:
            raise ValueError("empty model spec; use `default`, a model folder, a .gguf file, `fake` or http(s) URLs")
        if spec == FAKE or spec.startswith(FAKE + ":"):
            self.kind = ModelKind.FAKE
            if spec != FAKE:
                try:
                    self.fake_latency_s = float(spec.split(":", 1)[1])
                except ValueError:
                    raise ValueError(f"bad fake teacher spec {spec!r}: use `fake` or `fake:SECONDS`, e.g. fake:0.05") from None
                if not 0 <= self.fake_latency_s < float("inf"):
                    raise ValueError(f"bad fake teacher spec {spec!r}: the latency must be a finite number >= 0")
        elif any(p.startswith(HTTP_SCHEMES) for p in parts):
            if not all(p.startswith(HTTP_SCHEMES) for p in parts):
                raise ValueError(f"{spec!r} mixes http(s) URLs with something else: list only endpoint URLs, "
                                 "comma separated, or name one local model")
            self.kind = ModelKind.HTTP
            self.urls = tuple(parts)
        else:
            self.kind = ModelKind.LOCAL
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (ModelSpec, (str(self),))

    @property
    def is_local(self) -> bool:
        """True for a model loaded in this process (`default`, folders, GGUF files)."""
        return self.kind is ModelKind.LOCAL

    @property
    def is_http(self) -> bool:
        return self.kind is ModelKind.HTTP

    @property
    def is_fake(self) -> bool:
        return self.kind is ModelKind.FAKE

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="always"))

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> Any:
        return {"type": "string"}
