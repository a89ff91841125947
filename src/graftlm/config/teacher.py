"""Teacher and judge configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from graftlm.config.base import Section
from graftlm.config.model_spec import ModelSpec


class TeacherConfig(Section):
    """Which model writes (or judges) synthetic data, and how it is called."""

    model: ModelSpec = ModelSpec("default")
    """`default` (the embedded SmolLM2-135M-Instruct), a Hugging Face model folder or GGUF file, `fake`
    (the in-package fake teacher for tests and dry runs), or one or more `http(s)://host:port/v1` URLs of
    OpenAI-compatible servers, comma separated, to spread requests over a fleet. `fake:SECONDS` is the fake
    teacher with a latency per call. Parsed once when the recipe loads (see `ModelSpec`)."""

    model_name: str | None = None
    """The model name sent to an HTTP endpoint (`model` in the request). None asks the server's
    `/v1/models` and takes the first one."""

    api_key_env: str | None = "OPENAI_API_KEY"
    """Environment variable holding the API key sent as a bearer token. The key is never logged."""

    max_in_flight: int = Field(default=32, ge=1)
    """Requests in flight at once over all endpoints (HTTP) or the largest generation batch (local)."""

    max_batch_tokens: int = Field(default=65536, ge=1)
    """Local models only: the most padded tokens one batched generate call may hold (rows x (longest prompt +
    largest max_tokens)). Requests that would go over wait for the next call, so a long prompt runs with few
    others rather than holding many short requests; a request over it alone runs alone."""

    timeout_s: float = Field(default=120.0, gt=0)
    """Deadline in seconds for each attempt of an HTTP request, the whole reply included (not per read)."""

    max_retries: int = Field(default=6, ge=0)
    """Retries on 429, 5xx, connection errors and timeouts, with exponential backoff and jitter."""

    use_completions: bool = False
    """Call `/v1/completions` with a prompt rendered locally instead of `/v1/chat/completions`."""

    device: str = "auto"
    """Local models only: `auto` (CUDA when available, else CPU), `cpu` or `cuda`."""

    dtype: str = "auto"
    """Local models only: `auto` (bfloat16 on CUDA and on CPUs with AMX, else float32), `float32`, `bfloat16`."""

    backoff_base_s: float = Field(default=0.5, gt=0)
    """First retry delay in seconds; each further retry doubles it (with random jitter), up to `backoff_max_s`."""

    backoff_max_s: float = Field(default=30.0, gt=0)
    """Longest wait between two retries in seconds, also the cap on a server's `Retry-After`."""

    balance: Literal["least_in_flight", "round_robin"] = "least_in_flight"
    """How requests are spread over several endpoints: to the one with the fewest requests in flight,
    or in turn. Endpoints in back-off after errors are skipped either way."""

    prompt_tokenizer: str | None = None
    """With `use_completions`: a local model (`default`, HF folder, GGUF) whose tokenizer's chat template
    renders the prompt. None renders ChatML (`<|im_start|>role ... <|im_end|>`)."""

    cpu_threads: int | None = Field(default=None, ge=1)
    """Local models on CPU: torch threads for generation (process-wide). None keeps torch's default (one per
    core). On a machine busy with other jobs, 1 thread can be several times faster than contended cores."""
