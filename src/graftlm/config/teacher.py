"""Teacher and judge configuration."""

from __future__ import annotations

from pydantic import Field

from graftlm.config.base import Section


class TeacherConfig(Section):
    """Which model writes (or judges) synthetic data, and how it is called."""

    model: str = "default"
    """`default` (the embedded SmolLM2-135M-Instruct), a Hugging Face model folder or GGUF file, `fake`
    (the in-package fake teacher for tests and dry runs), or one or more `http(s)://host:port/v1` URLs of
    OpenAI-compatible servers, comma separated, to spread requests over a fleet."""

    model_name: str | None = None
    """The model name sent to an HTTP endpoint (`model` in the request). None asks the server's
    `/v1/models` and takes the first one."""

    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the API key sent as a bearer token. The key is never logged."""

    max_in_flight: int = Field(default=32, ge=1)
    """Requests in flight at once over all endpoints (HTTP) or the largest generation batch (local)."""

    timeout_s: float = Field(default=120.0, gt=0)
    """Per-request timeout in seconds."""

    max_retries: int = Field(default=6, ge=0)
    """Retries on 429, 5xx, connection errors and timeouts, with exponential backoff and jitter."""

    use_completions: bool = False
    """Call `/v1/completions` with a prompt rendered locally instead of `/v1/chat/completions`."""

    device: str = "auto"
    """Local models only: `auto` (CUDA when available, else CPU), `cpu` or `cuda`."""

    dtype: str = "auto"
    """Local models only: `auto` (bfloat16 on CUDA and on CPUs with AMX, else float32), `float32`, `bfloat16`."""
