"""Every setting the code reads is declared in limrank_app/settings.py (or is one of Django's own)."""
import ast
from pathlib import Path

from django.conf import global_settings

ROOT = Path(__file__).resolve().parents[2]
APPS = ["limrank_app", "curation", "training", "evaluation"]


def _declared() -> set[str]:
    tree = ast.parse((ROOT / "limrank_app" / "settings.py").read_text())
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names | {n for n in dir(global_settings) if n.isupper()}


def _read() -> dict[str, str]:
    """Setting name -> first place it is read: `settings.NAME` or `getattr(settings, "NAME", ...)`."""
    found = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if path.name == "settings.py" or "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                name = None
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "settings":
                    name = node.attr
                elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                      and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "settings"):
                    arg = node.args[1]
                    name = arg.value if isinstance(arg, ast.Constant) else "<computed name>"
                if name and (name.isupper() or name.startswith("<")):
                    found.setdefault(name, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_setting_read_is_declared():
    read = _read()
    assert "LIMRANK_JOB_LEASE_SECONDS" in read  # the walk sees plain reads
    missing = {name: where for name, where in read.items() if name not in _declared()}
    assert not missing, f"declare these in limrank_app/settings.py: {missing}"
