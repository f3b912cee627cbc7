"""Every relative link in the README and docs/ points at a file that exists, and every #anchor at a heading.

Why: the README and the report link into each other's sections by GitHub's heading slugs, and a
re-measured section's heading often changes (its dates), which silently breaks every link to it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text only
    text = text.lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def prose_lines(document: Path) -> list[str]:
    """The lines of a markdown file outside fenced code blocks (where `#` starts a comment, not a heading)."""
    lines, in_fence = [], False
    for line in document.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            lines.append(line)
    return lines


@functools.cache
def anchors(document: Path) -> frozenset[str]:
    """Every heading anchor of a markdown file (repeated headings get -1, -2, ... as on GitHub); read once per file."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose_lines(document):
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(1))
            found.add(slug if slug not in counts else f"{slug}-{counts[slug]}")
            counts[slug] = counts.get(slug, 0) + 1
    return frozenset(found)


def links(document: Path) -> list[str]:
    """The link targets of a markdown file outside code blocks."""
    return [target for line in prose_lines(document) for target in LINK.findall(line)]


def test_slug_matches_github_on_a_dated_heading():
    assert github_slug("4. Robustness to a mistuned base LR") == "4-robustness-to-a-mistuned-base-lr"
    assert github_slug("Short runs: the `general` actor (declared 2026-12-05, before)") == "short-runs-the-general-actor-declared-2026-12-05-before"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_resolves(document: Path):
    broken = []
    for target in links(document):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target} (no file {linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked})")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{document.name}: broken links:\n" + "\n".join(broken)
