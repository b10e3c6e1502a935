"""README.md stays the front door (small, the two commands) and no link in it or in docs/ points at a missing file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_BYTES = 15_000

# [text](target "title") and ![alt](target); the target may be wrapped in <...>.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
# [label]: target
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
# <img src="..."> and <a href="...">
HTML_TARGET = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:.+?)\1", re.DOTALL)
EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")  # http:, https:, mailto:, ...


def _markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def _targets(text: str) -> list[str]:
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    found = INLINE_LINK.findall(text) + REFERENCE_DEF.findall(text) + HTML_TARGET.findall(text)
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in found]


def _broken_links(path: Path) -> list[str]:
    broken = []
    for target in _targets(path.read_text(encoding="utf-8")):
        if EXTERNAL.match(target) or target.startswith("#"):
            continue
        relative = target.split("#", 1)[0].split("?", 1)[0]
        if not relative:
            continue
        resolved = (ROOT / relative.lstrip("/")) if relative.startswith("/") else (path.parent / relative)
        resolved = resolved.resolve()
        if not resolved.exists() or ROOT not in (resolved, *resolved.parents):
            broken.append(f"{path.relative_to(ROOT)}: {target}")
    return broken


def test_readme_is_small():
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes; move reference text into docs/ (limit {MAX_README_BYTES})"


def test_readme_has_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text
    assert "make test" in text


def test_docs_folder_has_pages():
    assert (ROOT / "docs" / "README.md").is_file()
    assert len(_markdown_files()) > 2


def test_every_relative_link_resolves():
    broken = [b for path in _markdown_files() for b in _broken_links(path)]
    assert not broken, "links to files that are not in the repository:\n" + "\n".join(broken)


def test_link_checker_sees_links():
    """The checker itself: it finds links and images, skips code, external links and anchors."""
    sample = (
        "[a](docs/x.md#part) ![b](screenshots/y.png) [c](https://example.com) [d](#top)\n[e]: ref.md\n"
        "`[f](in-code.md)`\n```\n[g](in-fence.md)\n```\n<img src=\"z.png\">\n"
    )
    assert sorted(_targets(sample)) == sorted(
        ["docs/x.md#part", "screenshots/y.png", "https://example.com", "#top", "ref.md", "z.png"]
    )
