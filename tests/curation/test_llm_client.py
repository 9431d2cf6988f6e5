"""The LLM client against the real local HTTP server (tests/llm_server.py): usage, cost, reasoning,
streaming, the SDK's retries honouring Retry-After, timeouts and bad answers, each through the blocking
`complete` and the asyncio `acomplete` (the `ask` fixture). The client is never patched."""
import asyncio
import time
from decimal import Decimal

import pytest

from curation.llm import LLMCallError, LLMClient, LLMEndpoint, llm_client, llm_cost, llm_endpoint, reasoning_split, record_later
from curation.models import LLMCall
from tests.curation.synth_helpers import llm_server, llm_settings  # noqa: F401

pytestmark = pytest.mark.django_db

REASONER_PROMPT = ("Determine if the following passage is relevant to the query. Answer only with 'true' or 'false'.\n"
                   "Query: how long to boil an egg\nPassage: Question addressed: how long to boil an egg. Nine minutes.\n")


def ask_sync(client, text, **kw):
    return client.complete(messages=[{"role": "user", "content": text}], purpose="test", item_key="k1", **kw)


def ask_async(client, text, **kw):
    """`acomplete` on a fresh event loop, the rows saved afterwards (the ORM stays out of the loop), as the
    generation executor does."""
    rows = []
    client.recorder = rows.append

    async def call():
        try:
            return await client.acomplete(messages=[{"role": "user", "content": text}], purpose="test", item_key="k1", **kw)
        finally:
            await client.aclose()

    try:
        return asyncio.run(call())
    finally:
        LLMCall.objects.bulk_create(rows)


@pytest.fixture(params=["sync", "async"])
def ask(request):
    return ask_sync if request.param == "sync" else ask_async


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_reasoning_content_usage_cost_and_row(llm_settings, stream, ask):
    client = llm_client("reasoner", stream=stream)
    reply = ask(client, REASONER_PROMPT)
    assert reply.content == "true"
    assert reply.reasoning.startswith("The query asks: how long to boil an egg")
    row = LLMCall.objects.get()
    assert (row.role, row.model, row.purpose, row.item_key, row.error) == ("reasoner", "deepseek-reasoner", "test", "k1", "")
    assert row.tokens_in > 10 and row.tokens_out > 5
    assert row.cost_usd == llm_cost(model="deepseek-reasoner", tokens_in=row.tokens_in, tokens_out=row.tokens_out) > 0
    assert row.latency_ms >= 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_think_tags_when_no_reasoning_field(llm_settings, llm_server, stream, ask):
    client = LLMClient(LLMEndpoint("reasoner", llm_server.url, "r1-distill-think", "k"), stream=stream)
    reply = ask(client, REASONER_PROMPT)
    assert reply.content == "true" and "<think>" not in reply.content
    assert reply.reasoning.startswith("The query asks")
    assert LLMCall.objects.get().cost_usd == Decimal("0")  # not in the price table


def test_429_retry_after_is_honoured_by_sdk(llm_settings, llm_server, ask):
    llm_server.retry_after = 1.0
    client = llm_client("generator")
    started = time.monotonic()
    reply = ask(client, "[[fault:429]] say something")
    elapsed = time.monotonic() - started
    assert reply.retries == 1 and reply.content.startswith("echo")
    assert elapsed >= 0.95  # the SDK's own backoff would be ~0.4-0.5 s; Retry-After said 1 s
    assert llm_server.counts["fault:429"] == 1 and llm_server.counts["requests"] == 2
    assert LLMCall.objects.get().error == ""


def test_persistent_429_and_500_fail_after_max_retries(llm_settings, llm_server, ask):
    client = llm_client("generator", max_retries=2)
    with pytest.raises(LLMCallError) as info:
        ask(client, "[[fault:429*]] hi")
    assert info.value.reason == "rate limited (HTTP 429)"
    assert llm_server.counts["requests"] == 3
    with pytest.raises(LLMCallError) as info:
        ask(client, "[[fault:500*]] hi")
    assert info.value.reason == "HTTP 500"
    errors = list(LLMCall.objects.order_by("id").values_list("error", flat=True))
    assert errors[0].startswith("rate limited (HTTP 429)") and errors[1].startswith("HTTP 500")


def test_transient_500_recovers(llm_settings, llm_server, ask):
    reply = ask(llm_client("generator"), "[[fault:500]] hi")
    assert reply.retries == 1 and llm_server.counts["fault:500"] == 1


def test_slow_answer_past_timeout(llm_settings, llm_server, ask):
    client = llm_client("generator", timeout=0.3, max_retries=0)
    started = time.monotonic()
    with pytest.raises(LLMCallError) as info:
        ask(client, "[[fault:slow]] hi")
    assert info.value.reason == "timeout" and time.monotonic() - started < 1.4
    assert LLMCall.objects.get().error.startswith("timeout")
    # With retries, the second attempt is fast again.
    assert ask(llm_client("generator", timeout=0.5, max_retries=1), "[[fault:slow]] hi again").retries == 1


@pytest.mark.parametrize("kind, reason", [("empty", "empty answer"), ("refusal", "refusal")])
def test_empty_and_refusal_are_errors(llm_settings, kind, reason, ask):
    with pytest.raises(LLMCallError) as info:
        ask(llm_client("generator"), f"[[fault:{kind}]] hi")
    assert info.value.reason == reason
    assert LLMCall.objects.get().error.startswith(reason)


def test_endpoints_come_from_settings(settings):
    settings.LIMRANK_REASONER_BASE_URL = "http://example.invalid/v1"
    settings.LIMRANK_REASONER_MODEL = "deepseek-reasoner"
    settings.LIMRANK_GENERATOR_MODEL = "gpt-4o"
    assert llm_endpoint("reasoner") == LLMEndpoint("reasoner", "http://example.invalid/v1", "deepseek-reasoner", settings.LIMRANK_REASONER_API_KEY)
    assert llm_endpoint("generator", model="gpt-4o-mini").model == "gpt-4o-mini"


def test_prices_and_reasoning_split():
    assert llm_cost(model="gpt-4o", tokens_in=1_000_000, tokens_out=1_000_000) == Decimal("12.500000")
    assert llm_cost(model="gpt-4o-mini", tokens_in=1_000_000, tokens_out=0) == Decimal("0.150000")
    assert llm_cost(model="deepseek-ai/DeepSeek-R1", tokens_in=0, tokens_out=1_000_000) == Decimal("2.190000")
    assert llm_cost(model="my-local-vllm", tokens_in=10**6, tokens_out=10**6) == 0
    assert reasoning_split("<think>a b</think>\ntrue") == ("a b", "true")
    assert reasoning_split("thinking without opening tag</think> false") == ("thinking without opening tag", "false")
    assert reasoning_split("true", "from the field") == ("from the field", "true")
    assert reasoning_split("plain answer") == ("", "plain answer")


def test_acomplete_needs_a_recorder_that_does_not_save(llm_settings, llm_server):
    client = llm_client("generator")  # record_now: would save inside the event loop
    with pytest.raises(RuntimeError, match="record_later"):
        asyncio.run(client.acomplete(messages=[{"role": "user", "content": "hi"}]))
    assert llm_server.counts["requests"] == 0


def test_acomplete_keeps_many_calls_open_on_one_loop(llm_settings, llm_server):
    """20 calls of 0.3 s each on one thread take about one latency, not twenty; the server saw them all at once."""
    llm_server.latency = 0.3
    client = llm_client("generator", recorder=record_later, max_connections=20)

    async def many():
        try:
            return await asyncio.gather(*(client.acomplete(messages=[{"role": "user", "content": f"hi {i}"}]) for i in range(20)))
        finally:
            await client.aclose()

    started = time.monotonic()
    replies = asyncio.run(many())
    assert time.monotonic() - started < 0.3 * 5
    assert [r.content for r in replies] == [f"echo: hi {i}" for i in range(20)]
    assert llm_server.max_in_flight == 20 and llm_server.in_flight == 0
