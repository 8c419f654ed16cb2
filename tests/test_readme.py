"""The README is a product page: small, the two set-up commands first (the second is what CI runs),
links that resolve, and neither the README nor docs/ carry dates."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")


def test_readme_is_at_most_12_kb_and_starts_with_the_two_commands():
    assert len(README.encode()) <= 12 * 1024
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert README.index("```bash") < README.index("\n## ")  # before any section
    assert first_block[0].startswith("python -m pip install . && python -m purejaxpg train")
    assert first_block[1] == 'python -m pip install ".[test]" && python -m pytest -q -n auto'
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python -m pip install -q ".[test]" && python -m pytest -q -n auto' in ci


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_no_dates_in_the_readme_and_docs():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert not DATE.search(path.read_text()), f"{path.name} carries a date"
