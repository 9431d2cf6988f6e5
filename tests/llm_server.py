"""A local OpenAI-compatible chat-completions server for tests, benchmarks and trying the pipeline without
an API key (stdlib only). Start it by hand:

    python -m tests.llm_server --port 8001 [--latency 0.2] [--fault-rate 0.2 --fault-seed 7] [--reasoning think]

then point LIMRANK_GENERATOR_BASE_URL / LIMRANK_REASONER_BASE_URL at http://127.0.0.1:8001/v1.

Answers are deterministic (a function of the request) and follow the studio's default prompts' output
formats: it recognises the setwise (Rank-R1) and listwise (RankGPT, ReasonRank, InsertRank) reranking prompts, answering
with the passages ordered by a deterministic relevance (`_relevance`: a `grade: N` in the passage, else query words
found), the rewrite prompt (asks for "daily_life"), the hard-negative prompt
("hard_negatives"), the positive prompt ("passage") and the reasoner prompt ("'true' or 'false'"),
reading the `Persona:`, `Seed query:`, `Domain:`, `Query:` and `Passage:` lines. Positive passages quote
the query; the reasoner calls a passage relevant when it does, and disagrees with that on purpose for a
`disagree_rate` share of (prompt, seed) pairs, so the filter has something to filter.

Faults, injected at `fault_rate` (deterministic from `fault_seed` and the request body), or forced by a
marker in the prompt, `[[fault:KIND]]` (first attempt only) or `[[fault:KIND*]]` (every attempt):
  429       rate limited, with `Retry-After: <retry_after>` (transient: only the first attempt)
  500       server error (transient)
  slow      answers after `slow_seconds` (transient; past a short client timeout)
  malformed a truncated JSON answer (or no true/false from the reasoner)
  empty     empty content
  refusal   "I'm sorry, but I can't help with that."
The attempt number comes from the openai SDK's `x-stainless-retry-count` header, so a retried call
recovers from a transient fault the way it would from a real one. `in_flight` / `max_in_flight` count the
chat completions being answered at once (a client's concurrency cap can be checked against them).
Reasoning is sent as `reasoning_content` (DeepSeek / vLLM style) or, with `--reasoning think` or a model
name containing "think", inline as `<think>…</think>`. `stream: true` answers as server-sent events.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULT_KINDS = ("429", "500", "slow", "malformed", "empty", "refusal")
TRANSIENT = {"429", "500", "slow"}
DOMAINS = ("finance", "law", "healthcare", "engineering", "education", "biology", "software", "agriculture", "history", "chemistry")
_MARKER = re.compile(r"\[\[fault:(\w+)(\*?)\]\]")


def _unit(*parts) -> float:
    """A deterministic number in [0, 1) from the parts."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _line(prompt: str, label: str) -> str:
    m = re.search(rf"^{re.escape(label)}:[ \t]*(.*)$", prompt, re.M)
    return m.group(1).strip() if m else ""


def _words(text: str) -> int:
    return len(text.split())


class LLMServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        fault_kinds: tuple[str, ...] = FAULT_KINDS,
        retry_after: float = 1,
        slow_seconds: float = 3.0,
        disagree_rate: float = 0.15,
        reasoning: str = "field",
        verbose: bool = False,
    ):
        self.latency, self.fault_rate, self.fault_seed = latency, fault_rate, fault_seed
        self.fault_kinds = tuple(fault_kinds)
        self.retry_after, self.slow_seconds, self.disagree_rate = retry_after, slow_seconds, disagree_rate
        self.reasoning, self.verbose = reasoning, verbose
        self.counts: Counter = Counter()  # "requests", "fault:<kind>", "purpose:<purpose>"
        self.in_flight = 0  # chat completions being answered now
        self.max_in_flight = 0  # the most at once since start (or reset_in_flight)
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self.httpd = _HTTPServer((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.httpd.server_address[0]}:{self.port}/v1"

    def start(self) -> "LLMServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def reset_in_flight(self) -> None:
        with self._lock:
            self.max_in_flight = self.in_flight

    # ---- deciding what to answer

    def fault_for(self, body: dict, prompt: str, attempt: int) -> str | None:
        m = _MARKER.search(prompt)
        if m:
            kind, always = m.group(1), bool(m.group(2))
            if kind in TRANSIENT and attempt > 0 and not always:
                return None
            return kind
        if self.fault_rate <= 0:
            return None
        key = json.dumps(body, sort_keys=True)
        if _unit(self.fault_seed, key) >= self.fault_rate:
            return None
        kind = self.fault_kinds[int(_unit(self.fault_seed, "kind", key) * len(self.fault_kinds))]
        if kind in TRANSIENT and attempt > 0:
            return None
        return kind

    def answer(self, body: dict, prompt: str) -> tuple[str, str, str]:
        """(purpose, reasoning, content) for a normal answer."""
        seed = body.get("seed", 0)
        ranked = _rank_answer(prompt)
        if ranked is not None:
            return ranked
        if '"daily_life"' in prompt:
            persona, query = _line(prompt, "Persona"), _line(prompt, "Seed query")
            domain = DOMAINS[int(_unit("domain", persona) * len(DOMAINS))]
            who = persona.rstrip(".")[:120]
            content = json.dumps({
                "domain": domain,
                "daily_life": f"I am {who[0].lower() + who[1:] if who else 'someone'} and I need to know: {query}?",
                "expert": f"In {domain} practice, {query}: what does the evidence say, and when does it not apply?",
            })
            return "rewrite", "", content
        if '"hard_negatives"' in prompt:
            query, domain = _line(prompt, "Query"), _line(prompt, "Domain") or "general"
            m = re.search(r"Write (\d+) hard-negative", prompt)
            n = int(m.group(1)) if m else 2
            words = query.split()
            topic = " ".join(words[: max(1, len(words) // 2)])
            angles = ("a different jurisdiction", "an earlier decade", "a broader population", "a neighbouring question", "a related but distinct entity")
            items = [
                {"title": f"{domain.title()} note {i + 1}: {topic}",
                 "passage": f"This {domain} reference discusses {topic} for {angles[i % len(angles)]}. "
                            f"It covers background, terminology and common misunderstandings about {topic}, "
                            f"but its scope differs from the situation described in the question (variant {i + 1}).",
                 "why_not_relevant": f"about {angles[i % len(angles)]}"}
                for i in range(n)
            ]
            return "hard_negative", "", json.dumps({"hard_negatives": items})
        if '"passage"' in prompt:
            query, domain = _line(prompt, "Query"), _line(prompt, "Domain") or "general"
            content = json.dumps({
                "title": f"{domain.title()} guide",
                "passage": f"Question addressed: {query}. In {domain}, the answer depends on the specifics, "
                           f"but the established guidance is clear and is summarised here with its main exceptions.",
            })
            return "positive", "", content
        if "'true' or 'false'" in prompt or "true or false" in prompt.lower():
            query, passage = _line(prompt, "Query"), _line(prompt, "Passage")
            relevant = bool(query) and query.lower() in passage.lower()
            if _unit("disagree", prompt, seed) < self.disagree_rate:
                relevant = not relevant
            reasoning = (
                f"The query asks: {query[:200]}. The passage "
                + ("states the question and gives the guidance that answers it." if relevant
                   else "is on a related topic but does not answer this specific question.")
            )
            return "reasoner", reasoning, "true" if relevant else "false"
        return "other", "", f"echo: {prompt[:200]}"


_PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.M)
_GRADE = re.compile(r"\bgrade:\s*(\d+)")
_BM25 = re.compile(r"^BM25 score: ([-\d.]+)$", re.M)


def _relevance(query: str, passage: str) -> int:
    """The server's notion of relevance: a `grade: N` written in the passage (tests that arrange an order), else
    how many distinct query words (3+ letters) the passage contains."""
    m = _GRADE.search(passage)
    if m:
        return int(m.group(1))
    words = {w for w in re.findall(r"\w+", query.lower()) if len(w) > 2}
    return len(words & set(re.findall(r"\w+", passage.lower())))


def _rank_answer(prompt: str) -> tuple[str, str, str] | None:
    """Answers to the setwise (Rank-R1) and listwise (RankGPT, ReasonRank, InsertRank) prompts, or None: the
    passages ordered by `_relevance` (InsertRank: ties broken by the BM25 score shown, then the identifier)."""
    if "which of the following documents is most relevant?" in prompt:
        m = re.search(r'Given the query: "(.*)", which of the following documents is most relevant\?', prompt)
        query = m.group(1) if m else ""
        docs = [(int(i), text) for i, text in _PASSAGE.findall(prompt.split("After completing the reasoning")[0])]
        if not docs:
            return None
        best = min(docs, key=lambda d: (-_relevance(query, d[1]), d[0]))[0]
        reasoning = f"Of the {len(docs)} documents, [{best}] answers the query best."
        return "setwise", reasoning, f"<answer>[{best}]</answer>"
    if "Search Query:" not in prompt or "identifier []" not in prompt:
        return None
    query = _line(prompt, "Search Query").rstrip(".")
    docs = [(int(i), text) for i, text in _PASSAGE.findall(prompt)]
    bm25 = [float(x) for x in _BM25.findall(prompt)] if "BM25 scores" in prompt else []
    score = {i: (bm25[k] if k < len(bm25) else 0.0) for k, (i, _) in enumerate(docs)}
    order = [i for i, _ in sorted(docs, key=lambda d: (-_relevance(query, d[1]), -score[d[0]], d[0]))]
    ranking = " > ".join(f"[{i}]" for i in order)
    if "thinks about the reasoning process" in prompt:  # ReasonRank: reasoning, then the answer in its tags
        return "reasonrank", f"Comparing the {len(docs)} passages with the query.", f"<answer>{ranking}</answer>"
    return ("insertrank" if bm25 else "listwise"), "", ranking


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # many calls in flight connect at once

    def handle_error(self, request, client_address):
        # A client that gave up (its timeout) closes the socket under a slow answer: expected, not news.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK reuses connections
    disable_nagle_algorithm = True  # no Nagle + delayed ACK (~40 ms) on a response that leaves in several writes
    wbufsize = -1  # buffered: headers and body leave in one send when the handler flushes after each request
    server_ref: LLMServer

    def log_message(self, fmt, *args):
        if self.server_ref.verbose:
            sys.stderr.write("llm_server: " + fmt % args + "\n")

    def _send(self, status: int, payload: dict | str, headers: dict | None = None, content_type="application/json") -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            return self._send(200, {"object": "list", "data": [{"id": "local", "object": "model", "owned_by": "tests"}]})
        return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        self.server_ref._enter()
        try:
            self._post()
        finally:
            self.server_ref._leave()

    def _post(self):
        srv = self.server_ref
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        try:
            body = json.loads(raw)
            messages = body["messages"]
            prompt = "\n".join(str(m.get("content") or "") for m in messages)
        except (ValueError, KeyError, TypeError):
            return self._send(400, {"error": {"message": "bad request body", "type": "invalid_request_error"}})
        srv.count("requests")
        attempt = int(self.headers.get("x-stainless-retry-count") or 0)
        fault = srv.fault_for(body, prompt, attempt)
        if srv.latency:
            time.sleep(srv.latency)
        if fault:
            srv.count(f"fault:{fault}")
        if fault == "429":
            return self._send(429, {"error": {"message": "rate limited, slow down", "type": "rate_limit_error"}},
                              {"Retry-After": f"{srv.retry_after:g}"})
        if fault == "500":
            return self._send(500, {"error": {"message": "internal server error", "type": "server_error"}})
        if fault == "slow":
            time.sleep(srv.slow_seconds)
        purpose, reasoning, content = srv.answer(body, prompt)
        srv.count(f"purpose:{purpose}")
        if fault == "malformed":
            content = content[: max(1, len(content) // 2)] if content.startswith("{") else "It could go either way."
        elif fault == "empty":
            content, reasoning = "", ""
        elif fault == "refusal":
            content, reasoning = "I'm sorry, but I can't help with that.", ""
        model = str(body.get("model") or "local")
        inline = srv.reasoning == "think" or "think" in model.lower()
        if reasoning and inline:
            content, reasoning = f"<think>\n{reasoning}\n</think>\n{content}", ""
        usage_in = max(1, round(_words(prompt) * 1.3))
        usage_out = max(1 if content else 0, round((_words(content) + _words(reasoning)) * 1.3))
        usage = {"prompt_tokens": usage_in, "completion_tokens": usage_out, "total_tokens": usage_in + usage_out}
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": round(_words(reasoning) * 1.3)}
        cid = "chatcmpl-" + hashlib.sha1(raw).hexdigest()[:16]
        created = int(time.time())
        if body.get("stream"):
            return self._stream(cid, created, model, reasoning, content, usage, bool((body.get("stream_options") or {}).get("include_usage")))
        message = {"role": "assistant", "content": content}
        if reasoning:
            message["reasoning_content"] = reasoning
        return self._send(200, {
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
            "usage": usage,
        })

    def _stream(self, cid, created, model, reasoning, content, usage, include_usage) -> None:
        def chunk(delta: dict, finish=None, with_usage=None, choices=True) -> bytes:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
            if with_usage is not None:
                obj["usage"] = with_usage
            return f"data: {json.dumps(obj)}\n\n".encode("utf-8")

        def pieces(text: str, n: int = 3) -> list[str]:
            step = max(1, len(text) // n + 1)
            return [text[i : i + step] for i in range(0, len(text), step)]

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"reasoning_content": p}) for p in pieces(reasoning)]
        events += [chunk({"content": p}) for p in pieces(content)]
        events.append(chunk({}, finish="stop"))
        if include_usage:
            events.append(chunk({}, with_usage=usage, choices=False))
        events.append(b"data: [DONE]\n\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Local OpenAI-compatible server for LimRank Studio (tests, benchmarks, demos).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--fault-seed", type=int, default=0)
    ap.add_argument("--faults", default=",".join(FAULT_KINDS), help="comma-separated kinds to inject")
    ap.add_argument("--retry-after", type=float, default=1.0)
    ap.add_argument("--slow-seconds", type=float, default=3.0)
    ap.add_argument("--disagree-rate", type=float, default=0.15)
    ap.add_argument("--reasoning", choices=["field", "think"], default="field")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    kinds = tuple(k for k in args.faults.split(",") if k)
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown:
        ap.error(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    server = LLMServer(
        args.host, args.port, latency=args.latency, fault_rate=args.fault_rate, fault_seed=args.fault_seed,
        fault_kinds=kinds, retry_after=args.retry_after, slow_seconds=args.slow_seconds,
        disagree_rate=args.disagree_rate, reasoning=args.reasoning, verbose=args.verbose,
    )
    print(f"llm_server listening on {server.url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
