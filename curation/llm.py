"""The OpenAI-compatible client of the synthesizer: two roles, generator (paper: GPT-4o) and reasoner
(paper: DeepSeek-R1), each with its own base URL, model and key, so OpenAI, DeepSeek's API and a vLLM
server all work.

Retries with exponential backoff that honour `Retry-After` are the openai SDK's own (`max_retries`);
the timeout is the SDK's too. Every call, successful or not, becomes an `LLMCall` row: tokens in/out,
latency, cost from the per-model price table, error. Rows go through a *recorder*: by default each is
saved at once; the generation service takes the unsaved row from each reply (or error) and writes them in
bulk from one thread, after it has parsed the answer (a malformed one marks the row's error).

`LLMClient.complete` blocks; `LLMClient.acomplete` is the same call on an asyncio event loop (openai's
AsyncOpenAI), for callers that keep many calls open from one thread (the generation executor).
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

from django.conf import settings

from curation.models import LLMCall

# USD per million tokens (input, output), public list prices; the longest matching prefix wins.
# Models not listed (a local vLLM server, the test server) cost nothing. Override or extend with
# settings.LIMRANK_LLM_PRICES = {"model-prefix": [in, out], ...}.
LLM_PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "o1": (15.00, 60.00),
    "o3-mini": (1.10, 4.40),
    "deepseek-reasoner": (0.55, 2.19),
    "deepseek-r1": (0.55, 2.19),
    "deepseek-chat": (0.27, 1.10),
}

_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_REFUSAL = re.compile(r"^\s*(i'?m sorry|i am sorry|i can(?:'|no)t (?:help|assist|comply)|i cannot (?:help|assist|comply)|i am unable to|i'?m unable to|as an ai\b)", re.I)


def llm_price_table() -> dict[str, tuple[float, float]]:
    table = dict(LLM_PRICES_PER_MTOK)
    table.update({k: tuple(v) for k, v in settings.LIMRANK_LLM_PRICES.items()})
    return table


def llm_cost(*, model: str, tokens_in: int, tokens_out: int) -> Decimal:
    name = model.lower().rsplit("/", 1)[-1]  # "deepseek-ai/DeepSeek-R1" -> "deepseek-r1"
    table = llm_price_table()
    key = max((k for k in table if name.startswith(k)), key=len, default=None)
    if key is None:
        return Decimal("0")
    price_in, price_out = table[key]
    cost = (Decimal(tokens_in) * Decimal(str(price_in)) + Decimal(tokens_out) * Decimal(str(price_out))) / Decimal(1_000_000)
    return cost.quantize(Decimal("0.000001"))


def reasoning_split(content: str | None, reasoning_content: str | None = None) -> tuple[str, str]:
    """(reasoning, answer). The server's `reasoning_content` when it sends one (DeepSeek, vLLM's reasoning
    parser), else the text inside `<think>…</think>`; a lone `</think>` (models that start inside the
    thought) splits there."""
    content = content or ""
    if reasoning_content:
        return reasoning_content.strip(), _THINK.sub("", content).strip()
    m = _THINK.search(content)
    if m:
        return m.group(1).strip(), (content[: m.start()] + content[m.end():]).strip()
    if "</think>" in content:
        before, after = content.split("</think>", 1)
        return before.replace("<think>", "").strip(), after.strip()
    return "", content.strip()


def looks_like_refusal(text: str) -> bool:
    return bool(_REFUSAL.match(text or ""))


@dataclass(frozen=True)
class LLMEndpoint:
    role: str
    base_url: str
    model: str
    api_key: str


def llm_endpoint(role: str, *, model: str | None = None, base_url: str | None = None) -> LLMEndpoint:
    """The endpoint of a role from settings (LIMRANK_GENERATOR_* / LIMRANK_REASONER_*); a run may pick another model."""
    if role == "generator":
        url, default_model, key = (settings.LIMRANK_GENERATOR_BASE_URL, settings.LIMRANK_GENERATOR_MODEL,
                                   settings.LIMRANK_GENERATOR_API_KEY)
    elif role == "reasoner":
        url, default_model, key = (settings.LIMRANK_REASONER_BASE_URL, settings.LIMRANK_REASONER_MODEL,
                                   settings.LIMRANK_REASONER_API_KEY)
    else:
        raise KeyError(role)
    return LLMEndpoint(role=role, base_url=base_url or url, model=model or default_model, api_key=key or "sk-none")


class LLMCallError(Exception):
    """A call that gave no usable answer; `reason` is short and stable (used in run summaries)."""

    def __init__(self, reason: str, detail: str = "", *, record: LLMCall | None = None):
        self.reason, self.detail, self.record = reason, detail, record
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class LLMReply:
    content: str  # the answer, without the reasoning
    reasoning: str
    finish_reason: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    retries: int
    record: LLMCall = field(repr=False)


Recorder = Callable[[LLMCall], None]


def record_now(call: LLMCall) -> None:
    call.save()


def record_later(call: LLMCall) -> None:
    """For callers that write the rows themselves: each reply and LLMCallError carries its `record`."""


class _StreamReader:
    """Collects a streamed answer chunk by chunk; the same for the sync and the async stream."""

    def __init__(self):
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.finish = ""
        self.usage = None

    def feed(self, chunk) -> None:
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices or []:
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                self.content.append(delta.content)
            extra = delta.model_extra or {}
            piece = extra.get("reasoning_content") or extra.get("reasoning")
            if piece:
                self.reasoning.append(piece)
            if getattr(delta, "refusal", None):
                raise LLMCallError("refusal", delta.refusal[:500])
            if choice.finish_reason:
                self.finish = choice.finish_reason

    def result(self) -> tuple[str, str, str, object]:
        return "".join(self.content), "".join(self.reasoning), self.finish, self.usage


def _completion_parts(completion) -> tuple[str, str, str, object]:
    """(content, reasoning field, finish reason, usage) of a non-streamed completion."""
    if not completion.choices:
        raise LLMCallError("empty answer", "no choices in the response")
    choice = completion.choices[0]
    message = choice.message
    if message.refusal:
        raise LLMCallError("refusal", message.refusal[:500])
    extra = message.model_extra or {}
    reasoning = extra.get("reasoning_content") or extra.get("reasoning") or ""
    return message.content or "", reasoning, choice.finish_reason or "", completion.usage


class LLMClient:
    """One role's client. Thread-safe: one instance serves every thread of a run.

    `complete` is the blocking call (threads, the shell, tests); `acomplete` is the same call for an asyncio
    event loop (the generation executor keeps `in_flight` of them open on one thread). Both build the request,
    map errors and record the call with the same code; each has its own openai client (OpenAI / AsyncOpenAI),
    made on first use. The async one belongs to the event loop that first used it: close it there
    (`await aclose()`)."""

    def __init__(
        self,
        endpoint: LLMEndpoint,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        stream: bool = False,
        recorder: Recorder | None = None,
        max_connections: int = 64,
    ):
        self.endpoint = endpoint
        self.stream = stream
        self.recorder = recorder or record_now
        self.timeout = settings.LIMRANK_LLM_TIMEOUT if timeout is None else timeout
        self.max_retries = settings.LIMRANK_LLM_MAX_RETRIES if max_retries is None else max_retries
        self.max_connections = max_connections
        self._client = None
        self._aclient = None
        self._lock = threading.Lock()

    def _limits(self):
        import httpx2

        return httpx2.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)

    @property
    def client(self):
        """The blocking openai client."""
        if self._client is None:
            import openai

            with self._lock:
                if self._client is None:
                    self._client = openai.OpenAI(
                        base_url=self.endpoint.base_url, api_key=self.endpoint.api_key, timeout=self.timeout,
                        max_retries=self.max_retries,
                        http_client=openai.DefaultHttpxClient(limits=self._limits(), timeout=self.timeout),
                    )
        return self._client

    @property
    def aclient(self):
        """The asyncio openai client (same retries, Retry-After handling and timeout as the blocking one), on
        the SDK's aiohttp transport (the `openai[aiohttp]` extra): it spends less CPU per call than the default
        httpx transport when many calls are in flight, and CPU per call is what limits a run's calls/s."""
        if self._aclient is None:
            import openai

            self._aclient = openai.AsyncOpenAI(
                base_url=self.endpoint.base_url, api_key=self.endpoint.api_key, timeout=self.timeout,
                max_retries=self.max_retries,
                http_client=openai.DefaultAioHttpClient(limits=self._limits(), timeout=self.timeout),
            )
        return self._aclient

    def close(self) -> None:
        """Close the blocking client (the next `complete` makes a new one)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async client (in the loop that used it; the next `acomplete` makes a new one) and the sync one."""
        aclient, self._aclient = self._aclient, None
        if aclient is not None:
            await aclient.close()
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    # ---- the call, blocking and asyncio; everything around the HTTP exchange is shared

    def complete(
        self,
        *,
        messages: list[dict],
        purpose: str = "",
        item_key: str = "",
        run=None,
        prompt=None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        response_format: dict | None = None,
    ) -> LLMReply:
        """One chat completion. Returns the reply, or raises LLMCallError (after recording the call)
        for an HTTP error left after the SDK's retries, a timeout, an empty answer or a refusal."""
        import openai

        kwargs, call = self._request(messages, purpose, item_key, run, prompt, temperature, max_tokens, seed, response_format)
        started = time.monotonic()
        try:
            raw = self.client.chat.completions.with_raw_response.create(**kwargs)
            if self.stream:
                reader = _StreamReader()
                with raw.parse() as stream:
                    for chunk in stream:
                        reader.feed(chunk)
                parts = reader.result()
            else:
                parts = _completion_parts(raw.parse())
        except LLMCallError as exc:
            self._finish(call, started, None, error=str(exc))
            exc.record = call
            raise
        except openai.OpenAIError as exc:
            raise self._failure(call, started, exc) from exc
        return self._reply(call, started, parts, raw.retries_taken)

    async def acomplete(
        self,
        *,
        messages: list[dict],
        purpose: str = "",
        item_key: str = "",
        run=None,
        prompt=None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        response_format: dict | None = None,
    ) -> LLMReply:
        """`complete` for an asyncio event loop. The recorder runs inside the loop, where Django's ORM
        refuses to run: use `record_later` (and write each reply's / error's `record`) or a recorder that
        only collects."""
        import openai

        if self.recorder is record_now:
            raise RuntimeError("LLMClient.acomplete cannot save rows inside the event loop: pass recorder=record_later and write `record` yourself")
        kwargs, call = self._request(messages, purpose, item_key, run, prompt, temperature, max_tokens, seed, response_format)
        started = time.monotonic()
        try:
            raw = await self.aclient.chat.completions.with_raw_response.create(**kwargs)
            if self.stream:
                reader = _StreamReader()
                async with raw.parse() as stream:
                    async for chunk in stream:
                        reader.feed(chunk)
                parts = reader.result()
            else:
                parts = _completion_parts(raw.parse())
        except LLMCallError as exc:
            self._finish(call, started, None, error=str(exc))
            exc.record = call
            raise
        except openai.OpenAIError as exc:
            raise self._failure(call, started, exc) from exc
        return self._reply(call, started, parts, raw.retries_taken)

    def _request(self, messages, purpose, item_key, run, prompt, temperature, max_tokens, seed, response_format) -> tuple[dict, LLMCall]:
        """The SDK's keyword arguments and the (unsaved) row of the call."""
        kwargs: dict = {"model": self.endpoint.model, "messages": messages}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if seed is not None:
            kwargs["seed"] = seed
        if response_format is not None:
            kwargs["response_format"] = response_format
        if self.stream:
            kwargs.update(stream=True, stream_options={"include_usage": True})
        call = LLMCall(
            generation_run=run, role=self.endpoint.role, purpose=purpose, model=self.endpoint.model[:200],
            prompt=prompt, prompt_version=getattr(prompt, "version", None), item_key=item_key[:200],
        )
        return kwargs, call

    def _failure(self, call: LLMCall, started: float, exc: Exception) -> LLMCallError:
        """Record an error the SDK raised (after its own retries) and name it."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            self._finish(call, started, None, error=f"timeout after {self.timeout:g}s and {self.max_retries} retries")
            return LLMCallError("timeout", str(exc), record=call)
        if isinstance(exc, openai.APIStatusError):
            reason = "rate limited (HTTP 429)" if exc.status_code == 429 else f"HTTP {exc.status_code}"
            self._finish(call, started, None, error=f"{reason}: {str(exc)[:500]}")
            return LLMCallError(reason, str(exc)[:500], record=call)
        if isinstance(exc, openai.APIConnectionError):
            self._finish(call, started, None, error=f"connection error: {exc}")
            return LLMCallError("connection error", str(exc), record=call)
        # e.g. a response body that is not a completion
        self._finish(call, started, None, error=f"bad response: {str(exc)[:500]}")
        return LLMCallError("bad response", str(exc)[:500], record=call)

    def _reply(self, call: LLMCall, started: float, parts: tuple[str, str, str, object], retries: int) -> LLMReply:
        content, reasoning_field, finish, usage = parts
        reasoning, answer = reasoning_split(content, reasoning_field)
        error = ""
        if finish == "content_filter" or looks_like_refusal(answer):
            error = "refusal"
        elif not answer:
            error = "empty answer"
        self._finish(call, started, usage, error=error)
        if error:
            raise LLMCallError(error, answer[:200], record=call)
        return LLMReply(
            content=answer, reasoning=reasoning, finish_reason=finish, tokens_in=call.tokens_in, tokens_out=call.tokens_out,
            latency_ms=call.latency_ms, retries=retries, record=call,
        )

    def _finish(self, call: LLMCall, started: float, usage, *, error: str) -> None:
        call.latency_ms = int((time.monotonic() - started) * 1000)
        call.tokens_in = (getattr(usage, "prompt_tokens", 0) or 0) if usage is not None else 0
        call.tokens_out = (getattr(usage, "completion_tokens", 0) or 0) if usage is not None else 0
        call.cost_usd = llm_cost(model=self.endpoint.model, tokens_in=call.tokens_in, tokens_out=call.tokens_out)
        call.error = error
        self.recorder(call)


def llm_client(role: str, *, model: str | None = None, **kwargs) -> LLMClient:
    return LLMClient(llm_endpoint(role, model=model), **kwargs)
