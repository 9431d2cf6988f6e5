"""Fixtures of the synthesizer's tests: the local OpenAI-compatible server and settings pointing at it,
and the real MS MARCO / PersonaHub samples from ../shared/data imported through the import service."""
from __future__ import annotations

import pytest

from tests.llm_server import LLMServer


@pytest.fixture
def llm_server():
    with LLMServer(retry_after=0.1, slow_seconds=1.5, disagree_rate=0.15) as server:
        yield server


@pytest.fixture
def llm_settings(settings, llm_server):
    settings.LIMRANK_GENERATOR_BASE_URL = llm_server.url
    settings.LIMRANK_REASONER_BASE_URL = llm_server.url
    settings.LIMRANK_GENERATOR_MODEL = "gpt-4o"
    settings.LIMRANK_REASONER_MODEL = "deepseek-reasoner"
    settings.LIMRANK_LLM_TIMEOUT = 1.0
    settings.LIMRANK_LLM_MAX_RETRIES = 3
    return settings


@pytest.fixture
def shared_pool(db, shared_data):
    """Seeds and personas from the real files (not copied into the repo)."""
    from curation.services.imports import personas_import, seeds_import

    seeds = seeds_import(file=shared_data / "msmarco" / "topics.msmarco-passage.dev-subset.txt", filename="topics.msmarco-passage.dev-subset.txt")
    personas = personas_import(file=shared_data / "personahub" / "personas_from_tool.jsonl", filename="personas_from_tool.jsonl")
    return seeds, personas
