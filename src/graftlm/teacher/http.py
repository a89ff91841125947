"""The OpenAI-compatible HTTP teacher: vLLM, llama.cpp's server, Ollama, TGI, hosted APIs, `graft serve`.

One `httpx.AsyncClient`, at most `max_in_flight` requests at once over all endpoints, client-side load
balancing over several endpoints (fewest in flight, or round robin), and retries with capped
exponential backoff and jitter on 429, 5xx, connection errors and timeouts. A `Retry-After` header
sets the wait and puts that endpoint in back-off, so other endpoints take the traffic meanwhile.
The API key is read from the environment variable named in the config and never logged.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx import USE_CLIENT_DEFAULT

from graftlm.config.teacher import TeacherConfig
from graftlm.errors import TeacherError
from graftlm.redact import split_credentials, strip_credentials
from graftlm.teacher.base import ChatResult, Completion, Message, SamplingOptions, Usage

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def normalize_url(url: str) -> str:
    """`http://host:8000`, `.../v1` and `.../v1/` all become `http://host:8000/v1`."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise TeacherError(f"not an http(s) URL: {strip_credentials(url)!r}",
                           hint="write endpoints as http://host:port/v1")
    if not url.split("://", 1)[1].count("/"):
        url += "/v1"
    return url


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def render_chatml(messages: list[Message]) -> str:
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


POOL_CONNECTIONS = 1
"""Connections per httpx client. httpx's pool bookkeeping costs grow with its size, so requests to an
endpoint are spread over several small clients instead of one big one (5-10x the rate at 64 in flight)."""


@dataclass
class Pool:
    client: httpx.AsyncClient
    in_flight: int = 0


@dataclass
class Endpoint:
    url: str
    """Without credentials: this is the form that is logged, shown and stored."""
    auth: tuple[str, str] | None = None
    """(user, password) from a URL written `http://user:password@host/v1`, sent as basic auth."""
    in_flight: int = 0
    backoff_until: float = 0.0
    failures: int = 0
    pools: list[Pool] = field(default_factory=list)


class _Retry(Exception):
    """A failure worth another try: why, and how long the server asked us to wait (if it did)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class HttpTeacher:
    """A client for one or more OpenAI-compatible endpoints. `usage` sums the tokens of all answers."""

    def __init__(self, urls: list[str], *, model_name: str | None = None, api_key: str | None = None,
                 api_key_env: str | None = None, max_in_flight: int = 32, timeout_s: float = 120.0,
                 max_retries: int = 6, backoff_base_s: float = 0.5, backoff_max_s: float = 30.0,
                 balance: str = "least_in_flight", use_completions: bool = False,
                 prompt_renderer: Any = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not urls:
            raise TeacherError("no teacher endpoint given", hint="set teacher.model to http://host:port/v1")
        self.endpoints = [Endpoint(*split_credentials(normalize_url(u))) for u in urls]
        self.model_name = model_name
        self.model_id = model_name or ",".join(e.url for e in self.endpoints)
        self.api_key_env = api_key_env
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.balance = balance
        self.use_completions = use_completions
        self.prompt_renderer = prompt_renderer or render_chatml
        self.usage = Usage()
        self.requests = 0
        self.retries = 0
        self._rr = itertools.count()
        self._max_in_flight = max_in_flight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore = asyncio.Semaphore(max_in_flight)
        self._model_lock = asyncio.Lock()
        self._max_pools = -(-max_in_flight // POOL_CONNECTIONS)
        self._client_args: dict[str, Any] = {
            "headers": {"Authorization": f"Bearer {api_key}"} if api_key else {},
            "timeout": httpx.Timeout(timeout_s),
            "limits": httpx.Limits(max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_CONNECTIONS),
            "transport": transport,
        }
        self._verify: Any = None
        self._has_key = bool(api_key)
        self.timeout_s = timeout_s

    @classmethod
    def from_config(cls, config: TeacherConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> HttpTeacher:
        urls = list(config.model.urls)
        api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        renderer = None
        if config.use_completions and config.prompt_tokenizer:
            renderer = _template_renderer(config.prompt_tokenizer)
        return cls(urls, model_name=config.model_name, api_key=api_key or None, api_key_env=config.api_key_env,
                   max_in_flight=config.max_in_flight, timeout_s=config.timeout_s, max_retries=config.max_retries,
                   backoff_base_s=config.backoff_base_s, backoff_max_s=config.backoff_max_s,
                   balance=config.balance, use_completions=config.use_completions, prompt_renderer=renderer,
                   transport=transport)

    # -- the protocol --------------------------------------------------------------------------------

    async def chat(self, messages: list[Message], options: SamplingOptions) -> ChatResult:
        model = await self.resolve_model()
        body: dict[str, Any] = {
            "model": model, "temperature": options.temperature, "top_p": options.top_p,
            "max_tokens": options.max_tokens, "n": options.n,
        }
        if options.stop:
            body["stop"] = list(options.stop)
        if options.seed is not None:
            body["seed"] = options.seed
        if self.use_completions:
            body["prompt"] = self.prompt_renderer(messages)
            path = "/completions"
        else:
            body["messages"] = messages
            path = "/chat/completions"
        start = time.perf_counter()
        result = await self.request("POST", path, json=body,
                                    parse=lambda data: parse_completion(data, self.use_completions, options.n, model))
        result = ChatResult(result.completions, result.usage, result.model, time.perf_counter() - start)
        self.usage = self.usage + result.usage
        self.requests += 1
        return result

    async def aclose(self) -> None:
        self._bind_loop()  # pools made in a loop that has ended cannot be closed from this one
        for endpoint in self.endpoints:
            pools, endpoint.pools = endpoint.pools, []
            for pool in pools:
                await pool.client.aclose()

    async def resolve_model(self) -> str:
        """The model name from the config, or the first model the first endpoint lists."""
        if self.model_name:
            return self.model_name
        self._bind_loop()
        async with self._model_lock:
            if not self.model_name:
                data = await self.request("GET", "/models")
                try:
                    self.model_name = str(data["data"][0]["id"])
                except (KeyError, IndexError, TypeError):
                    raise TeacherError(f"{self.endpoints[0].url}/models lists no model",
                                       hint="set teacher.model_name to the model the server serves") from None
        return self.model_name

    # -- transport, balancing and retries ------------------------------------------------------------

    def pick(self) -> Endpoint:
        """The endpoint for the next attempt among those not in back-off (all, if every one is)."""
        now = time.monotonic()
        ready = [e for e in self.endpoints if e.backoff_until <= now]
        if not ready:  # all in back-off: the one free soonest
            ready = [min(self.endpoints, key=lambda e: e.backoff_until)]
        turn = next(self._rr)
        if self.balance == "round_robin":
            return ready[turn % len(ready)]
        low = min(e.in_flight for e in ready)
        best = [e for e in ready if e.in_flight == low]
        return best[turn % len(best)]

    def backoff_delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter, capped; a server's Retry-After wins (also capped)."""
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt))
        return random.uniform(ceiling / 2, ceiling)

    def _bind_loop(self) -> None:
        """Clients, semaphore and lock belong to one event loop; a caller that runs several
        `asyncio.run`s with one teacher gets fresh ones in each new loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                for endpoint in self.endpoints:
                    endpoint.pools = []  # their connections died with the old loop
                self._semaphore = asyncio.Semaphore(self._max_in_flight)
                self._model_lock = asyncio.Lock()
            self._loop = loop

    async def request(self, method: str, path: str, json: dict[str, Any] | None = None,
                      parse: Callable[[Any], Any] | None = None) -> Any:
        """The JSON reply to one request, after retries; `parse` turns it into the result, and a
        `BadReply` it raises becomes a TeacherError naming the field and the endpoint (not retried)."""
        self._bind_loop()
        async with self._semaphore:
            last = ""
            for attempt in range(self.max_retries + 1):
                endpoint = self.pick()
                wait = endpoint.backoff_until - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    data = await self._attempt(endpoint, method, path, json)
                except _Retry as r:
                    last = r.reason
                    endpoint.failures += 1
                    if attempt == self.max_retries:
                        break
                    delay = self.backoff_delay(attempt, r.retry_after)
                    endpoint.backoff_until = max(endpoint.backoff_until, time.monotonic() + delay)
                    self.retries += 1
                    log.info("teacher %s%s: %s; retry %d/%d in %.1fs", endpoint.url, path, r.reason,
                             attempt + 1, self.max_retries, delay)
                    if len(self.endpoints) == 1:
                        await asyncio.sleep(delay)
                    continue
                try:
                    return parse(data) if parse is not None else data
                except BadReply as e:
                    raise TeacherError(f"{endpoint.url}{path} sent a reply that is not an OpenAI completion: {e}",
                                       hint="check that the endpoint is an OpenAI-compatible server "
                                            "(`curl URL/models`)") from None
            raise TeacherError(f"the teacher failed after {self.max_retries + 1} attempts: {last}",
                               hint="check that the server is up and not overloaded; raise teacher.max_retries "
                                    "or teacher.timeout_s, or lower teacher.max_in_flight")

    async def _attempt(self, endpoint: Endpoint, method: str, path: str, json: dict[str, Any] | None) -> Any:
        url = endpoint.url + path
        pool = self._pool(endpoint)
        endpoint.in_flight += 1
        pool.in_flight += 1
        try:
            # httpx's timeout bounds each read; this bounds the whole attempt, so a server that dribbles
            # bytes cannot hold a request longer than teacher.timeout_s.
            async with asyncio.timeout(self.timeout_s):
                response = await pool.client.request(method, url, json=json, auth=endpoint.auth or USE_CLIENT_DEFAULT)
        except (httpx.TimeoutException, TimeoutError):
            raise _Retry(f"timed out after {self.timeout_s:g} s ({url})") from None
        except httpx.TransportError as e:
            raise _Retry(f"cannot connect to {url}: {type(e).__name__}") from None
        finally:
            endpoint.in_flight -= 1
            pool.in_flight -= 1
        status = response.status_code
        if status < 400:
            try:
                return response.json()
            except ValueError:
                raise _Retry(f"{url} returned HTTP {status} with a body that is not JSON") from None
        detail = error_detail(response)
        if status in RETRY_STATUS:
            raise _Retry(f"HTTP {status} from {url}: {detail}", parse_retry_after(response.headers.get("retry-after")))
        raise self.http_error(url, status, detail)

    def _pool(self, endpoint: Endpoint) -> Pool:
        """The least busy client of an endpoint; a new one while all are full and the cap allows."""
        best = min(endpoint.pools, key=lambda p: p.in_flight, default=None)
        if best is not None and (best.in_flight < POOL_CONNECTIONS or len(endpoint.pools) >= self._max_pools):
            return best
        if self._verify is None:
            import ssl

            self._verify = ssl.create_default_context()  # one TLS context shared by all clients
        pool = Pool(httpx.AsyncClient(verify=self._verify, **self._client_args))
        endpoint.pools.append(pool)
        return pool

    def http_error(self, url: str, status: int, detail: str) -> TeacherError:
        where = f"HTTP {status} from {url}: {detail}"
        if status in (401, 403):
            var = self.api_key_env or "the API key variable"
            if not self._has_key:
                return TeacherError(f"{where} (the server wants an API key and none was sent)",
                                    hint=f"export {var}=<key>, or set teacher.api_key_env to the variable holding it")
            return TeacherError(f"{where} (the server rejected the API key)",
                                hint=f"check the API key in ${var} (teacher.api_key_env names the variable)")
        if status == 404:
            return TeacherError(where, hint="check the endpoint URL (it should end in /v1) and teacher.model_name; "
                                            "`curl URL/models` lists what the server serves")
        if status == 413:
            return TeacherError(where, hint="the request is too large for this server: shorten the prompt")
        return TeacherError(where, hint="the server refused the request as sent; this is not retried")


def error_detail(response: httpx.Response) -> str:
    """The message of an OpenAI-shaped error body, or the start of the body text."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
        if data.get("detail"):
            return str(data["detail"])[:500]
    return str(data)[:200]


class BadReply(ValueError):
    """A reply that is JSON but not the shape of an OpenAI completion; the message names the field."""


def _describe(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"


def _token_count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadReply(f"usage.{key} must be a whole number of tokens, not {_describe(value)}")
    return value


def parse_completion(data: Any, completions_api: bool, n: int, model: str) -> ChatResult:
    """A ChatResult from a chat-completions or completions response body. Raises BadReply naming the
    field when the body is not that shape (content must be text or null, usage a mapping of counts)."""
    if not isinstance(data, dict):
        raise BadReply(f"the reply must be a JSON object, not {_describe(data)}")
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise BadReply(f"choices must be a list, not {_describe(choices)}")
    texts, reasons, order = [], [], []
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise BadReply(f"choices[{i}] must be an object, not {_describe(choice)}")
        if completions_api:
            text, where = choice.get("text"), f"choices[{i}].text"
        else:
            message = choice.get("message")
            if not isinstance(message, dict):
                raise BadReply(f"choices[{i}].message must be an object, not {_describe(message)}")
            text, where = message.get("content"), f"choices[{i}].message.content"
        if text is not None and not isinstance(text, str):
            raise BadReply(f"{where} must be text or null, not {_describe(text)}")
        reason, index = choice.get("finish_reason"), choice.get("index", i)
        if reason is not None and not isinstance(reason, str):
            raise BadReply(f"choices[{i}].finish_reason must be text or null, not {_describe(reason)}")
        if isinstance(index, bool) or not isinstance(index, int):
            raise BadReply(f"choices[{i}].index must be a whole number, not {_describe(index)}")
        texts.append(text or "")
        reasons.append(reason)
        order.append(index)
    if len(texts) != n:
        raise TeacherError(f"asked the teacher for n={n} completions, got {len(texts)}",
                           hint="some servers ignore `n`; use n=1 with different seeds instead")
    usage = data.get("usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise BadReply(f"usage must be an object of token counts, not {_describe(usage)}")
    ranked = sorted(range(len(texts)), key=lambda j: order[j])
    return ChatResult(
        completions=tuple(Completion(texts[j], reasons[j]) for j in ranked),
        usage=Usage(_token_count(usage, "prompt_tokens"), _token_count(usage, "completion_tokens")),
        model=data["model"] if isinstance(data.get("model"), str) and data["model"] else model,
    )


def _template_renderer(spec: str) -> Any:
    from graftlm.models import load_tokenizer

    tok = load_tokenizer(spec)

    def render(messages: list[Message]) -> str:
        return str(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    return render
