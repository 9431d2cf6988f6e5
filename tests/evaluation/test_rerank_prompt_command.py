"""manage.py rerank_prompt prints exactly protocol.prompt_build's string and one newline."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from curation import protocol
from tests.curation.test_protocol import reference_dataset_prompt, reference_prompts


def _run(*args) -> str:
    out = io.StringIO()
    call_command("rerank_prompt", *args, stdout=out)
    return out.getvalue()


def test_scifact_prompt_equals_the_reference_and_ends_with_one_newline():
    out = _run("--task", "SciFact", "--query", "Vitamin D prevents falls.", "--passage-title", "Trial",
               "--passage-text", "We found no effect.")
    (expected,) = reference_prompts([("Vitamin D prevents falls.", {"title": "Trial", "text": "We found no effect."})],
                                    reference_dataset_prompt("SciFact", None, False))
    assert out == expected + "\n"
    assert "Claim: Vitamin D prevents falls.\n\nA relevant passage" in out


def test_bright_subtask_no_prompt_and_followir_instruction():
    out = _run("--task", "BrightRetrieval", "--subtask", "pony", "--query", "sort an array", "--passage-text", "Arrays")
    assert "I will use the programming language pony. Problem: sort an array" in out
    assert _run("--task", "BrightRetrieval", "--subtask", "pony", "--query", "sort an array", "--passage-text",
                "Arrays", "--no-prompt") == protocol.pointwise_prompt("sort an array", "Arrays") + "\n"
    out = _run("--task", "Core17", "--query", "oil spills", "--instruction", "Only 1990s events.",
               "--passage-title", "T", "--passage-text", "x")
    assert out == protocol.pointwise_prompt("oil spills Only 1990s events.", "T x") + "\n"


@pytest.mark.parametrize("args,message", [
    (("--task", "Chemistry"), "unknown task 'Chemistry'"),
    (("--task", "BrightRetrieval"), "needs a subtask"),
    (("--task", "BrightRetrieval", "--subtask", "chem"), "unknown BrightRetrieval subtask 'chem'"),
])
def test_unknown_task_is_a_clear_error(args, message):
    with pytest.raises(CommandError, match=message):
        _run(*args, "--query", "q", "--passage-text", "p")


def test_command_line_writes_the_bytes_exactly():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "manage.py", "rerank_prompt", "--task", "NFCorpus", "--query", "statins",
                           "--passage-title", "", "--passage-text", "Body"], cwd=root, capture_output=True, check=True)
    expected = protocol.prompt_build(query="statins", passage_title="", passage_text="Body", task="NFCorpus")
    assert done.stdout.decode() == expected + "\n" and "Topic: statins" in expected
