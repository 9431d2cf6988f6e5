"""The README is an entry point (what it is, a screenshot, the two commands, where to go next); the reference is in docs/."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Written by other engineers in parallel; a link to one of them must resolve once it exists.
WRITTEN_ELSEWHERE: set[str] = set()  # every linked doc exists


def _local_links(path: Path) -> list[str]:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


def test_readme_is_short_and_keeps_both_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "make run" in text and "make test" in text  # .ci/run and new users rely on both


def test_readme_screenshot_is_a_png():
    shots = [t for t in _local_links(ROOT / "README.md") if t.endswith(".png")]
    assert shots
    for shot in shots:
        assert (ROOT / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot


def test_links_in_readme_and_docs_resolve():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in _local_links(page):
            resolved = (page.parent / target).resolve()
            rel = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)
            if not resolved.exists() and rel not in WRITTEN_ELSEWHERE:
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken
