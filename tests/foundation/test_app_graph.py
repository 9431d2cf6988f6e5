"""The app graph is one-way: limrank_app (core) <- curation <- training <- evaluation.

Walks every module's syntax tree (migrations included): a lower app never imports a higher one, at module level or
inside a function; and no function imports a project module to dodge a cycle. Only heavy ML libraries may be
imported lazily inside functions; project modules import them that way, so importing a project module stays cheap.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["limrank_app", "curation", "training", "evaluation"]
RANK = {app: i for i, app in enumerate(LAYERS)}


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
    upward, dodges = [], []
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
    return upward, dodges


def test_no_app_imports_a_higher_app():
    upward, _ = _violations()
    assert not upward, "a lower app imports a higher one:\n" + "\n".join(upward)


def test_no_function_local_import_of_project_code():
    _, dodges = _violations()
    assert not dodges, "function-local imports of project modules (import at module level):\n" + "\n".join(dodges)


def test_the_walk_finds_what_it_forbids(tmp_path, monkeypatch):
    """The checker itself: an upward import inside a function is caught on both counts."""
    app = tmp_path / "curation"
    app.mkdir()
    (app / "bad.py").write_text("def f():\n    from evaluation.models import EvalRun\n    return EvalRun\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__, fromlist=["LAYERS"]), "LAYERS", ["curation"])
    upward, dodges = _violations()
    assert upward == dodges == ["curation/bad.py:2 imports evaluation.models"]
