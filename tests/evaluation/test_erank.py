"""ERank: the paper's prompt, the score distribution over multi-token score strings, the expected value and the
paper's s * P(s) by hand, on a scripted model whose answer-position logits are known."""
from __future__ import annotations

import html
import math
import re

import pytest

from evaluation.rerankers import reranker_build
from evaluation.rerankers.erank import PROMPT, erank_score, score_distribution
from tests.evaluation import tiny_lm

# Figure 5 of arXiv 2509.00520 ("Prompt for scoring with integers from 0 to 10"), as the paper's text gives it
# (a Markdown rendering of the PDF; the figure's line breaks are lost there).
FIGURE_5 = ("Given a query and a document, please give a relevance score of 0 to 10. The goal or relevance definition "
            "is: { instruction }\n\nHere is the query: { query } Here is the document: { document } After thinking, "
            "directly choose a relevance score from [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]. - 0 represents completely not "
            "related. - 10 means perfectly related. Desired output format: &lt;think&gt; put your thinking here "
            "&lt;/think&gt;&lt;answer&gt; Only allows an integer here &lt;/answer&gt; Your output:")


def _words(text: str) -> str:
    return " ".join(re.sub(r"\{ (\w+) \}", r"{\1}", html.unescape(text)).split())


def test_prompt_is_figure_5_word_for_word():
    assert _words(PROMPT) == _words(FIGURE_5)


def test_distribution_of_split_score_strings_by_hand():
    """"10" is "1" then "0": P(1) = p(1) (1 - p(0|1)), P(10) = p(1) p(0|1); the rest one step each."""
    ids = {k: [k] for k in range(10)} | {10: [1, 0]}
    first = {k: math.log(0.05) for k in range(10)} | {1: math.log(0.5)}
    after_one = {0: math.log(0.4)}
    dist = score_distribution(lambda pre: first if pre == () else after_one, ids)
    assert dist[1] == pytest.approx(0.5 * 0.6) and dist[10] == pytest.approx(0.5 * 0.4)
    assert dist[7] == pytest.approx(0.05)
    total = 0.05 * 9 + 0.5
    expected = (sum(0.05 * k for k in range(10) if k != 1) + 1 * 0.3 + 10 * 0.2) / total
    assert erank_score(dist) == pytest.approx(expected)
    assert erank_score(dist, rule="paper") == pytest.approx(1 * 0.3)  # s = 1 is the most probable string


def _weights(c: float) -> dict[int, float]:
    return {k: math.exp(-((k - c) ** 2) / 2) for k in range(11)}


def _script(tok):
    """At "<answer>": digit d gets log w_d + 30 ("1" carries w_1 + w_10); after "<answer>1": "0" gets log w_10 + 30
    and "<" log w_1 + 30 (the string ends). w_k = exp(-(k - c)^2 / 2), c = number of " apple" in the input."""
    digit = {k: tok.encode(str(k), add_special_tokens=False)[0] for k in range(10)}
    stop = tok.encode("<", add_special_tokens=False)[0]
    apple = tok.encode(" apple", add_special_tokens=False)

    def logits_of(ids):
        text = tok.decode(ids)
        w = _weights(tiny_lm.count_of(ids, apple))
        if text.endswith("<answer>"):
            out = {digit[k]: math.log(w[k]) + 30 for k in range(10)}
            out[digit[1]] = math.log(w[1] + w[10]) + 30
            return out
        if text.endswith("<answer>1"):
            return {digit[0]: math.log(w[10]) + 30, stop: math.log(w[1]) + 30}
        return {}

    return logits_of


@pytest.mark.parametrize("mode", ["direct", "generate"])
def test_expected_score_by_hand_and_the_ranking_it_implies(tmp_path, mode):
    path = tiny_lm.saved_model(tmp_path / "m")
    r = reranker_build("erank", path=path, config={"mode": mode, "max_new_tokens": 4, "batch_size": 4})
    assert r.score_ids[10] == [r.score_ids[1][0], r.score_ids[0][0]]  # this tokenizer splits "10"
    r.model = tiny_lm.scripted(r.tokenizer, _script(r.tokenizer))
    docs = ["pear", "x apple apple apple apple apple apple apple apple", "x apple apple", "x apple apple apple apple apple"]
    scores = r.score("q", docs)
    for doc, s in zip(docs, scores):
        w = _weights(doc.count(" apple"))
        assert s == pytest.approx(sum(k * v for k, v in w.items()) / sum(w.values()), abs=1e-5)
    per_pair = 2 if mode == "direct" else 3  # the prefixes "" and "1" (+ the reasoning pass)
    assert r.cost.calls == per_pair * len(docs) and r.cost.tokens_in > 0
    assert [i for i, _ in r.rank("q", docs, doc_ids=list("abcd"))] == ["b", "d", "c", "a"]


def test_paper_rule_is_s_times_p_of_s(tmp_path):
    path = tiny_lm.saved_model(tmp_path / "m")
    r = reranker_build("erank", path=path, config={"mode": "direct", "rule": "paper"})
    r.model = tiny_lm.scripted(r.tokenizer, _script(r.tokenizer))
    (s,) = r.score("q", ["x apple apple apple"])  # c = 3: s = 3, P(3) = w_3 / sum w (the rest of the vocabulary ~ 0)
    w = _weights(3)
    assert s == pytest.approx(3 * w[3] / sum(w.values()), abs=1e-5)
    with pytest.raises(ValueError, match="rule must be"):
        reranker_build("erank", path=path, config={"rule": "mean"})
