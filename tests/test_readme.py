"""The README is the front door: short, its two set-up commands first, CI running its test command, and
every link of it and of docs/ leading somewhere that exists."""

import re

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks (a `# comment` in a bash block is not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def anchor(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page) -> set[str]:
    return {anchor(h) for h in re.findall(r"^#{1,6} (.+)$", prose(page.read_text()), re.M)}


def test_readme_is_short_with_the_two_commands_first():
    text = README.read_text()
    assert len(text.splitlines()) <= 250, "README.md is the front door: move details into docs/"
    first_section = re.search(r"^## (.+)$", text, re.M).group(1)
    assert first_section == "Set-up: two commands"
    first_block = re.search(r"^```bash\n(.*?)^```", text, re.M | re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["bash scripts/app.sh", "bash scripts/test.sh"]


def test_ci_runs_the_readmes_test_command():
    ci = [line.split("#")[0].strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "bash scripts/test.sh" in ci  # the README's second command, as it stands there


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to missing {target}"
        if fragment and file.suffix == ".md":
            assert fragment in anchors(file), f"{page.name}: no heading #{fragment} in {file.name}"


def test_screenshots_are_used_and_light():
    images = sorted((ROOT / "docs").rglob("*.png"))
    linked = " ".join(LINK.findall(" ".join(p.read_text() for p in PAGES)))
    for image in images:
        assert image.name in linked, f"{image.relative_to(ROOT)} is shown nowhere; link it or delete it"
    assert sum(i.stat().st_size for i in images) < 3 * 2**20, "docs/ images over 3 MB; retake them smaller"
