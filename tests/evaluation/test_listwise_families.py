"""Setwise (Rank-R1), FIRST, ReasonRank and InsertRank: golden prompts against the authors' code, and ranking
logic checked where a wrong merge, sort or parse would show.

Reference prompt files are verbatim copies in tests/fixtures/listwise_reference/ (see its README for repository,
path and commit). The reference functions below are transcribed from the named files as they are written there
(only `self.` dropped and the arguments they read made parameters)."""
from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from evaluation.rerankers import reranker_build
from evaluation.rerankers.first import FirstReranker, first_messages, letters_ranked
from evaluation.rerankers.insertrank import InsertRankReranker, insertrank_messages
from evaluation.rerankers.listwise import ListwiseReranker, windows
from evaluation.rerankers.reasonrank import ReasonRankReranker, reasonrank_messages, reasonrank_parse
from evaluation.rerankers.setwise import (CHARACTERS, PATTERN, SetwiseReranker, TransformersChat,
                                          setwise_answer, setwise_messages)
from tests.llm_server import LLMServer

REF = Path(__file__).resolve().parents[1] / "fixtures" / "listwise_reference"
PASSAGES = ["Insects fly to  light by [2] phototaxis.", "Title: Content: Bees dance [B] to share where food is.",
            "Moths   circle lamps because they steer by a light source they take for the moon."]


# ---------------------------------------------------------------- the sliding window (RankLLM's loop)

def _rankllm_windows(rank_start, rank_end, window_size, step):
    """`sliding_windows` of gangiswag/llm-reranker scripts/utils/rankllm.py (the same loop is in ReasonRank's
    rerank/rankllm.py): the (start, end) of each `permutation_pipeline` call."""
    out = []
    end_pos = rank_end
    start_pos = rank_end - window_size
    # end_pos > rank_start ensures that the list is non-empty while allowing last window to be smaller than window_size
    # start_pos + step != rank_start prevents processing of redundant windows (e.g. 0-20, followed by 0-10)
    while end_pos > rank_start and start_pos + step != rank_start:
        start_pos = max(start_pos, rank_start)
        out.append((start_pos, end_pos))
        end_pos = end_pos - step
        start_pos = start_pos - step
    return out


@pytest.mark.parametrize("window,step", [(20, 10), (9, 9), (4, 2), (5, 3)])
def test_windows_equal_rankllm_sliding_windows(window, step):
    for n in range(1, 61):
        if n == window - step:
            # RankLLM's guard `start_pos + step != rank_start` is already false before the first window when
            # n == window - step, so it reranks nothing (e.g. 10 candidates, window 20 / step 10); the studio
            # ranks them in one window.
            assert _rankllm_windows(0, n, window, step) == [] and windows(n, window=window, step=step) == [(0, n)]
            continue
        assert windows(n, window=window, step=step) == _rankllm_windows(0, n, window, step), (n, window, step)


@pytest.fixture(scope="module")
def server():
    with LLMServer(disagree_rate=0.0) as srv:
        yield srv


def _graded(grades):
    return [f"passage {i} grade: {g}" for i, g in enumerate(grades)]


def test_sliding_window_merge_checked_by_hand(server):
    """25 passages, window 20, step 10 -> windows (5, 25) then (0, 15); the server sorts each window by grade.
    Grade i for passage i: window (5, 25) gives 0..4, 24..5; window (0, 15) sorts 0..4 and 24..15 -> 24..15,
    4..0; the tail 14..5 stays where the first window put it (a merge, not a global sort)."""
    lw = ListwiseReranker(model="m", base_url=server.url, window=20, step=10)
    before = server.counts["purpose:listwise"]
    order = lw.order("which passage", _graded(range(25)))
    assert order == [*range(24, 14, -1), 4, 3, 2, 1, 0, *range(14, 4, -1)]
    assert server.counts["purpose:listwise"] - before == 2 == lw.cost.calls
    assert lw.cost.tokens_in > 0 and lw.cost.tokens_out > 0  # from the server's usage


# ---------------------------------------------------------------- RankGPT

def _rankgpt_reference(item, rank_start, rank_end):
    """sunnweiwei/RankGPT rank_gpt.py (commit 2dfde966): `get_prefix_prompt`, `get_post_prompt` and
    `create_permutation_instruction` without its tiktoken length loop (the passages here fit)."""
    def get_prefix_prompt(query, num):
        return [{'role': 'system',
                 'content': "You are RankGPT, an intelligent assistant that can rank passages based on their relevancy to the query."},
                {'role': 'user',
                 'content': f"I will provide you with {num} passages, each indicated by number identifier []. \nRank the passages based on their relevance to query: {query}."},
                {'role': 'assistant', 'content': 'Okay, please provide the passages.'}]

    def get_post_prompt(query, num):
        return f"Search Query: {query}. \nRank the {num} passages above based on their relevance to the search query. The passages should be listed in descending order using identifiers. The most relevant passages should be listed first. The output format should be [] > [], e.g., [1] > [2]. Only response the ranking results, do not say any word or explain."

    query = item['query']
    num = len(item['hits'][rank_start: rank_end])
    max_length = 300
    messages = get_prefix_prompt(query, num)
    rank = 0
    for hit in item['hits'][rank_start: rank_end]:
        rank += 1
        content = hit['content']
        content = content.replace('Title: Content: ', '')
        content = content.strip()
        # For Japanese should cut by character: content = content[:int(max_length)]
        content = ' '.join(content.split()[:int(max_length)])
        messages.append({'role': 'user', 'content': f"[{rank}] {content}"})
        messages.append({'role': 'assistant', 'content': f'Received passage [{rank}].'})
    messages.append({'role': 'user', 'content': get_post_prompt(query, num)})
    return messages


def _rankgpt_permutation_reference(permutation, n):
    """RankGPT `clean_response`, `remove_duplicate` and the index handling of `receive_permutation`."""
    new_response = ''
    for c in permutation:
        if not c.isdigit():
            new_response += ' '
        else:
            new_response += c
    response = [int(x) - 1 for x in new_response.strip().split()]
    new = []
    for c in response:
        if c not in new:
            new.append(c)
    original_rank = [tt for tt in range(n)]
    response = [ss for ss in new if ss in original_rank]
    return response + [tt for tt in original_rank if tt not in response]


def test_rankgpt_prompt_and_parsing_equal_the_reference():
    from evaluation.rerankers.listwise import permutation_parse, rankgpt_messages

    long = "word " * 400
    passages = PASSAGES + [long]
    item = {"query": "why light", "hits": [{"content": p} for p in passages]}
    assert rankgpt_messages("why light", passages) == _rankgpt_reference(item, 0, len(passages))
    for text in ["[3] > [1] > [3] > [9] > [2]", "passage3 > 1, then [4]", "I think [2] > [1]"]:
        assert permutation_parse(text, 4) == _rankgpt_permutation_reference(text, 4), text


# ---------------------------------------------------------------- ReasonRank

def _reasonrank_reference(query, passages, prompt_info):
    """8421BCD/ReasonRank: `add_prefix_prompt` / `add_post_prompt` (utils.py, rank_GPT_reasoning branch) and the
    message assembly of `create_prompt` (rerank/rank_listwise_os_llm.py), content as `convert_doc_to_prompt_content`
    makes it when the passage fits (strip, fix_text, replace_number)."""
    from ftfy import fix_text

    def replace_number(s: str) -> str:
        return re.sub(r"\[(\d+)\]", r"(\1)", s)

    query = replace_number(query).strip()
    num = len(passages)
    messages = []
    messages.append({"role": "system", "content": prompt_info['system_prompt_reasoning']})
    prefix = f"I will provide you with {num} passages, each indicated by a numerical identifier []. Rank the passages based on their relevance to the search query: {query}.\n"
    rank = 0
    input_context = f"{prefix}\n"
    for cand in passages:
        rank += 1
        content = replace_number(" ".join(fix_text(cand.strip()).split()))
        input_context += f"[{rank}] {content}\n"
    example_ordering = "[2] > [1]"
    input_context += f"Search Query: {query}.\nRank the {num} passages above based on their relevance to the search query. All the passages should be included and listed using identifiers, in descending order of relevance. The format of the answer should be [] > [], e.g., {example_ordering}."
    messages.append({"role": "user", "content": input_context})
    return messages


def _reasonrank_clean_reference(response, prompt_info, n):
    """ReasonRank rerank/rankllm.py `_clean_response` (reasoning mode) + `receive_permutation`'s index handling."""
    pattern = rf'{prompt_info["pattern"]}'
    match = re.search(pattern, response.lower(), re.DOTALL)
    if match:
        response = match.group(1).strip()
    else:
        if '<answer>' in response:
            response = response.split('<answer>')[-1]
    new_response = ""
    for c in response:
        if not c.isdigit():
            new_response += " "
        else:
            new_response += c
    response = [int(x) - 1 for x in new_response.strip().split()]
    new = []
    for c in response:
        if c not in new:
            new.append(c)
    original_rank = [tt for tt in range(n)]
    response = [ss for ss in new if ss in original_rank]
    return response + [tt for tt in original_rank if tt not in response]


def test_reasonrank_prompt_and_parsing_equal_the_reference():
    info = tomllib.loads((REF / "listwise_prompt_r1.toml").read_text())
    query = "why do [1] insects fly to light "
    assert reasonrank_messages(query, PASSAGES) == _reasonrank_reference(query, PASSAGES, info)
    outputs = ["<think>[3] looks best, then 1</think> <answer>[3] > [1] > [2]</answer>",
               "<think>long</think>\n<answer>[2] > [2] > [9]</answer>",
               "no tags at all: [2] > [3]",
               "<think>cut off before the answer... <answer>[3] > [1]"]
    for text in outputs:
        assert reasonrank_parse(text, 3) == _reasonrank_clean_reference(text, info, 3), text
    assert reasonrank_parse(outputs[0], 3) == [2, 0, 1]


def test_reasonrank_reranks_through_the_server_reasoning_first(server):
    rr = reranker_build("reasonrank", config={"base_url": server.url, "model": "reasoner", "window": 20, "step": 10})
    assert isinstance(rr, ReasonRankReranker) and rr.backend.max_tokens == 8192
    before = server.counts["purpose:reasonrank"]
    # The server sends its reasoning apart (reasoning_content); the reranker reads the answer after it.
    assert rr.order("q", _graded([3, 9, 1, 7])) == [1, 3, 0, 2]
    assert server.counts["purpose:reasonrank"] - before == 1


# ---------------------------------------------------------------- InsertRank

def _insertrank_reference(template, query, passages, scores):
    """castorini/rank_llm SingleTurnListwiseInferenceHandler.generate_prompt (+ `_generate_prefix_suffix`,
    `_generate_body`) for this template, with `_format_template` as str.format and passages already prompt content."""
    prompt_messages = [
        {"role": "system", "content": system_message}
        for system_message in [template.get("system_message", "")]
        if system_message
    ]
    num = len(passages)
    prefix_text = template["prefix"].format(num=num, query=query)
    suffix_text = template["suffix"].format(num=num, query=query)
    body_text = ""
    rank = 0
    for cand, cand_score in zip(passages, scores):
        rank += 1
        identifier = str(rank)
        score = f"{cand_score:.3f}"
        body_text += template["body"].format(rank=identifier, candidate=cand, score=score)
    prompt_text = ""
    if prefix_text:
        prompt_text += prefix_text
    prompt_text += body_text
    if suffix_text:
        prompt_text += suffix_text
    prompt_messages.append({"role": "user", "content": prompt_text})
    return prompt_messages


def test_insertrank_prompt_equals_rankllm_template():
    template = yaml.safe_load((REF / "insert_rank_template.yaml").read_text())
    passages = ["Insects fly to light by phototaxis.", "Bees dance.", "Moths circle lamps."]
    scores = [12.3456, 7.0, 0.12345]
    assert insertrank_messages("why insects fly to light", passages, scores) == \
        _insertrank_reference(template, "why insects fly to light", passages, scores)
    with pytest.raises(ValueError, match="one first-stage score per passage"):
        insertrank_messages("q", passages, scores[:2])


def test_insertrank_reads_the_scores_it_is_shown(server):
    """Equal grades: the server breaks the tie by the BM25 score in the prompt, so the scores decide the order,
    and each passage carries its own score into later windows. 5 passages, window 3, step 1, scores 1 5 2 4 3:
    window (2, 5) shows 2 3 4 -> 3 4 2; window (1, 4) shows 1 3 4 (5, 4, 3) -> unchanged; window (0, 3) shows
    0 1 3 (1, 5, 4) -> 1 3 0. Final 1 3 0 4 2."""
    ir = InsertRankReranker(model="m", base_url=server.url, window=3, step=1)
    docs = _graded([1, 1, 1, 1, 1])
    scores = [1.0, 5.0, 2.0, 4.0, 3.0]
    before = server.counts["purpose:insertrank"]
    assert ir.order("q", docs, scores) == [1, 3, 0, 4, 2]
    assert server.counts["purpose:insertrank"] - before == 3
    with pytest.raises(TypeError, match="first_stage_scores"):
        ir.score("q", docs)


# ---------------------------------------------------------------- FIRST

ALPH_START_IDX = ord('A') - 1


def _first_reference(query, passages, system_message, system_message_supported, variable_passages=True):
    """gangiswag/llm-reranker scripts/utils/rank_listwise_os_llm.py `create_prompt` (text reranking,
    use_alpha=True, no few-shot) with `_add_prefix_prompt`, `_add_post_prompt` and rankllm.py `_replace_number`,
    up to the chat template."""
    def _replace_number(s):
        return re.sub(r"\[([A-z]+)\]", r"(\1)", s)

    num = len(passages)
    max_length = 300
    messages = list()
    if system_message and system_message_supported:
        messages.append({"role": "system", "content": system_message})
    prefix = f"I will provide you with {num} passages, each indicated by a alphabetical identifier []. Rank the passages based on their relevance to the search query: {query}.\n"
    rank = 0
    input_context = f"{prefix}\n"
    for hit in passages:
        rank += 1
        content = hit.replace("Title: Content: ", "").strip()
        content = " ".join(content.split()[:max_length])
        identifier = chr(ALPH_START_IDX + rank)
        input_context += f"[{identifier}] {_replace_number(content)}\n"
    example_ordering = "[B] > [A]" if variable_passages else "[D] > [B]"
    input_context += f"Search Query: {query}.\nRank the {num} passages above based on their relevance to the search query. All the passages should be included and listed using identifiers, in descending order of relevance. The output format should be [] > [], e.g., {example_ordering}, Only respond with the ranking results, do not say any word or explain."
    messages.append({"role": "user", "content": input_context})
    if system_message and not system_message_supported:
        messages[0]["content"] = system_message + "\n " + messages[0]["content"]
    return messages


def _first_logits_reference(logits, window_size, n):
    """FIRST `_evaluate_logits` (use_alpha) -> result string, then rankllm.py `_clean_response` (use_alpha) and
    `receive_permutation`'s index handling."""
    evaluations = {
        ord(logit.decoded_token): logit.logprob
        for logit in logits.values()
        if len(logit.decoded_token) == 1 and
           logit.decoded_token.isalpha() and
           ALPH_START_IDX + 1 <= ord(logit.decoded_token) <= ALPH_START_IDX + window_size
    }
    sorted_evaluations = sorted(evaluations.items(), key=lambda x: -x[1])
    result_string = ">".join([f"[{chr(x)}]" for x, y in sorted_evaluations])
    new_response = ""
    for c in result_string:
        if not c.isalpha():
            new_response += " "
        else:
            new_response += str(ord(c) - ALPH_START_IDX)
    response = [int(x) - 1 for x in new_response.strip().split()]
    original_rank = [tt for tt in range(n)]
    response = [ss for ss in response if ss in original_rank]
    return response + [tt for tt in original_rank if tt not in response]


def test_first_prompt_and_logit_ranking_equal_the_reference():
    system = "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query"
    for supported in (True, False):
        assert first_messages("why light", PASSAGES, system_supported=supported) == \
            _first_reference("why light", PASSAGES, system, supported)
    top = {"C": -0.5, "A": -2.0, " B": -0.1, "Z": -0.2, "7": -0.3, "B": -1.0, "E": -0.7}
    logits = {i: SimpleNamespace(decoded_token=t, logprob=lp) for i, (t, lp) in enumerate(top.items())}
    # window 20: E is a valid identifier but this window has 4 passages, so it is dropped; D was not in the top.
    expected = _first_logits_reference(logits, 20, 4)
    from evaluation.rerankers.listwise import identifiers_complete

    assert identifiers_complete(letters_ranked(top, window_size=20), 4) == expected == [2, 1, 0, 3]


def _chat_tokenizer():
    from training.tiny import byte_level_tokenizer

    tok = byte_level_tokenizer([f"passage {i} grade: {i}" for i in range(30)] + PASSAGES, vocab_size=400)
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    return tok


def test_first_on_a_tiny_model_whose_logits_prefer_a_known_order():
    """A tiny Qwen2 whose output layer is a fixed bias: B > C > … > T at every position, and A far below every
    other token (outside the top `logprobs`). Each window thus moves its first passage last. 25 passages,
    window 20, step 10: window (5, 25) -> 0..4, 6..24, 5; window (0, 15) holds 0..4, 6..15 -> 1..4, 6..15, 0."""
    import torch

    from training.tiny import tiny_qwen

    tok = _chat_tokenizer()
    model = tiny_qwen(tok, hidden_size=32, layers=1, heads=2, kv_heads=1, max_positions=8192)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        for j in range(1, 20):  # B..T
            head.bias[tok.convert_tokens_to_ids(chr(ord("A") + j))] = 100.0 - j
        head.bias[tok.convert_tokens_to_ids("A")] = -5.0
    model.lm_head = head
    first = FirstReranker(model=model, tokenizer=tok, window=20, step=10, device="cpu", logprobs=120)
    order = first.order("which passage", [f"passage {i}" for i in range(25)])
    assert order == [1, 2, 3, 4, *range(6, 16), 0, *range(16, 25), 5]
    assert first.cost.calls == 2 and first.cost.tokens_out == 2 and first.cost.tokens_in > 100
    # The prompt is the chat template over FIRST's messages ("[" is appended for the forward pass). This template
    # never names the system role, so FIRST folds its system message into the user turn.
    text = first.prompt("q", ["a", "b"])
    assert text.startswith("<|user|>\nYou are RankLLM") and text.endswith("<|assistant|>\n")


def test_first_on_a_tiny_model_that_reads_the_passages():
    """A scripted tiny Qwen2 whose next-token logit for letter X is 1 + the grade written in passage [X] of the
    prompt it is given: FIRST must rank each window by content. Grades 0..24 for passages 0..24 -> the same
    hand-checked merge as RankGPT's: 24..15, 4..0, 14..5."""
    from tests.evaluation.tiny_lm import scripted

    tok = _chat_tokenizer()
    letter_ids = {chr(ord("A") + j): tok.convert_tokens_to_ids(chr(ord("A") + j)) for j in range(20)}

    def logits_of(ids):
        text = tok.decode(ids)
        return {letter_ids[m.group(1)]: 1.0 + int(m.group(2))
                for m in re.finditer(r"^\[([A-T])\] passage \d+ grade: (\d+)$", text, re.M)}

    model = scripted(tok, logits_of)
    first = FirstReranker(model=model, tokenizer=tok, device="cpu")
    assert first.order("which passage", _graded(range(25))) == [*range(24, 14, -1), 4, 3, 2, 1, 0, *range(14, 4, -1)]


def test_first_cuts_passages_to_fit_its_context():
    import torch

    from training.tiny import tiny_qwen

    tok = _chat_tokenizer()
    first = FirstReranker(model=tiny_qwen(tok, layers=1, max_positions=8192), tokenizer=tok, device="cpu")
    base = len(tok.encode(first.prompt("q", ["passage"] * 3)))
    first.context_size = base + first.output_tokens + 150  # room for about 50 tokens per passage
    long = ["passage grade " * 400] * 3
    cut = first.prompt("q", long)
    assert base + 100 < len(tok.encode(cut)) <= first.context_size - first.output_tokens
    assert cut.count("passage grade") < 3 * 400
    del torch


# ---------------------------------------------------------------- setwise (Rank-R1)

def test_setwise_prompt_equals_rank_r1():
    prompt = tomllib.loads((REF / "prompt_setwise-R1.toml").read_text())
    characters = [f'[{i+1}]' for i in range(20)]
    assert CHARACTERS == characters and PATTERN == prompt["pattern"]
    # Rank-R1/run_setwise.py R1SetwiseLlmRanker.compare: the passages of one (already shuffled) set.
    passages = "\n".join([f'{characters[i]} {PASSAGES[i]}' for i in range(len(PASSAGES))])
    reference = [{'role': "system", 'content': prompt["prompt_system"]},
                 {'role': "user", 'content': prompt['prompt_user'].format(query="why light", docs=passages)}]
    assert setwise_messages("why light", PASSAGES) == reference
    assert setwise_answer("<think>[1] is close, [2] better</think>\n<answer> [2] </answer>") == "[2]"
    assert setwise_answer("<answer>[2]</answer>") is None  # no reasoning: Rank-R1 rejects it


class _OracleSets:
    """A backend that answers the setwise prompt with the highest hidden grade of the set shown."""

    def __init__(self):
        self.cost, self.calls = None, 0

    def complete(self, messages):
        self.calls += 1
        self.cost.add(tokens_in=1)
        user = messages[-1]["content"]
        items = re.findall(r"^\[(\d+)\] passage \d+ grade: (\d+)$", user, re.M)
        best = max(items, key=lambda x: int(x[1]))[0]
        return f"<think>grades</think><answer>[{best}]</answer>"


def _ielab_sort(grades, method, num_child, k):
    """ielab/llm-rankers llmrankers/setwise.py `heapify`, `heapSort`, the bubble sort and the ordering of `rerank`,
    with `compare` answered by the highest grade (ties: the first) in the order given."""
    calls = [0]

    def compare(docs):
        calls[0] += 1
        best = max(range(len(docs)), key=lambda j: (grades[docs[j]], -j))
        return CHARACTERS[best]

    def heapify(arr, n, i):
        # Find largest among root and children
        if num_child * i + 1 < n:  # if there are children
            docs = [arr[i]] + arr[num_child * i + 1: min((num_child * (i + 1) + 1), n)]
            inds = [i] + list(range(num_child * i + 1, min((num_child * (i + 1) + 1), n)))
            output = compare(docs)
            try:
                best_ind = CHARACTERS.index(output)
            except ValueError:
                best_ind = 0
            try:
                largest = inds[best_ind]
            except IndexError:
                largest = i
            # If root is not largest, swap with largest and continue heapifying
            if largest != i:
                arr[i], arr[largest] = arr[largest], arr[i]
                heapify(arr, n, largest)

    def heapSort(arr, k):
        n = len(arr)
        ranked = 0
        # Build max heap
        for i in range(n // num_child, -1, -1):
            heapify(arr, n, i)
        for i in range(n - 1, 0, -1):
            # Swap
            arr[i], arr[0] = arr[0], arr[i]
            ranked += 1
            if ranked == k:
                break
            # Heapify root element
            heapify(arr, i, 0)

    ranking = list(range(len(grades)))
    original_ranking = copy.deepcopy(ranking)
    if method == "heapsort":
        heapSort(ranking, k)
        ranking = list(reversed(ranking))
    else:
        last_start = len(ranking) - (num_child + 1)
        for i in range(k):
            start_ind = last_start
            end_ind = last_start + (num_child + 1)
            is_change = False
            while True:
                if start_ind < i:
                    start_ind = i
                output = compare(ranking[start_ind:end_ind])
                try:
                    best_ind = CHARACTERS.index(output)
                except ValueError:
                    best_ind = 0
                if best_ind != 0:
                    ranking[start_ind], ranking[start_ind + best_ind] = ranking[start_ind + best_ind], ranking[start_ind]
                    if not is_change:
                        is_change = True
                        if last_start != len(ranking) - (num_child + 1) \
                                and best_ind == len(ranking[start_ind:end_ind])-1:
                            last_start += len(ranking[start_ind:end_ind])-1
                if start_ind == i:
                    break
                if not is_change:
                    last_start -= num_child
                start_ind -= num_child
                end_ind -= num_child
    top = ranking[:k]
    return top + [d for d in original_ranking if d not in top], calls[0]


GRADES = [7, 22, 3, 15, 29, 0, 11, 26, 4, 18, 9, 24, 1, 13, 28, 6, 20, 2, 17, 25, 8, 12, 27, 5, 19, 10, 23, 14, 21, 16]


@pytest.mark.parametrize("method,num_child", [("heapsort", 3), ("heapsort", 2), ("bubblesort", 3), ("bubblesort", 4)])
def test_setwise_sort_of_a_known_permutation(method, num_child):
    backend = _OracleSets()
    sw = SetwiseReranker(backend=backend, num_child=num_child, k=10, method=method, shuffle=False)
    docs = [f"passage {i} grade: {g}" for i, g in enumerate(GRADES)]
    order = sw.order("q", docs)
    top10 = sorted(range(30), key=lambda i: -GRADES[i])[:10]
    assert order[:10] == top10  # 4, 14, 22, 7, 11, 19, 26, 1, 28, 16
    assert order[10:] == [i for i in range(30) if i not in top10]  # the rest keep the first-stage order
    reference, n_calls = _ielab_sort(GRADES, method, num_child, 10)
    assert order == reference and backend.calls == n_calls == sw.cost.calls


def test_setwise_through_the_server_with_shuffled_sets_and_votes(server):
    sw = reranker_build("setwise", config={"base_url": server.url, "num_child": 3, "k": 5, "num_permutation": 3})
    assert isinstance(sw, SetwiseReranker) and sw.shuffle
    before = server.counts["purpose:setwise"]
    grades = GRADES[:12]
    order = sw.order("q", _graded(grades))
    assert order[:5] == sorted(range(12), key=lambda i: -grades[i])[:5]
    assert server.counts["purpose:setwise"] - before == sw.cost.calls and sw.cost.calls % 3 == 0
    with pytest.raises(ValueError, match="heapsort or bubblesort"):
        SetwiseReranker(backend=sw.backend, method="quick")


def test_setwise_transformers_backend_counts_its_generation():
    from training.tiny import tiny_qwen

    tok = _chat_tokenizer()
    chat = TransformersChat("", max_new_tokens=3, device="cpu", model=tiny_qwen(tok, layers=1), tokenizer=tok)
    sw = SetwiseReranker(backend=chat, num_child=2, k=2, shuffle=False)
    # A random model answers nothing readable, so every parent stays: the heap is built without a swap, then the
    # sort swaps the root out twice (k = 2): [0, 1, 2] -> [2, 1, 0] -> [1, 2, 0], reversed -> 0, 2 on top, then 1.
    assert sw.order("q", ["a", "b", "c"]) == [0, 2, 1]
    assert sw.cost.calls == 2 and sw.cost.calls <= sw.cost.tokens_out <= 3 * sw.cost.calls and sw.cost.tokens_in > 0


def test_reasoning_inline_or_apart_reads_the_same_answer():
    """A server that writes its reasoning inline (`<think>…</think>` in the content) and one that sends it apart
    (`reasoning_content`): setwise and ReasonRank read the same picks from both."""
    grades = [2, 8, 5, 1, 9, 4]
    orders = []
    for mode in ("think", "field"):
        with LLMServer(reasoning=mode) as srv:
            sw = SetwiseReranker(backend=reranker_build("setwise", config={"base_url": srv.url}).backend,
                                 num_child=2, k=3, shuffle=False)
            rr = ReasonRankReranker(model="m", base_url=srv.url)
            orders.append((sw.order("q", _graded(grades)), rr.order("q", _graded(grades))))
    assert orders[0] == orders[1]
    assert orders[0][0][:3] == [4, 1, 2] and orders[0][1] == [4, 1, 2, 5, 0, 3]
