"""The README stays short and true, and the examples that moved from it into the docs stay
the tested ones: the fake-resolver example (docs/howto/testing.md) runs, the custom resolver
(docs/howto/resolver.md) is the one in examples/stub_resolver.py (tested against Unbound in
test_e2e_unbound.py). tests/test_docs.py runs every example of every page."""

from __future__ import annotations

import re
from pathlib import Path

import mxselect

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(encoding="utf-8"), re.S)


def test_readme_starts_with_the_two_commands() -> None:
    """The first lines are the two commands newcomers and CI rely on, verbatim."""
    assert README.startswith(
        "# mxselect\n\n```sh\n"
        "pip install -e . && mxselect --zone examples/demo.zone --seed 1 example.net "
        "nomail.example.net broken.example.net\n"
        "bash .ci/run    # as root on Debian 12: installs knot, unbound, ldnsutils, openssl and "
        "the extras, then ruff, mypy, the tests and a benchmark smoke run\n```\n"
    )


def test_readme_is_short_and_links_to_existing_pages() -> None:
    """What it is, the two commands, one example, links: the rest lives in docs/."""
    assert len(README.encode()) < 8000
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert {"docs/tutorial.md", "docs/cli.md", "docs/policy.md", "CONTRIBUTING.md"} <= set(local)
    assert [link for link in local if not (ROOT / link).exists()] == []


def test_fake_resolver_example_runs() -> None:
    """The FakeResolver example executes and its assertions hold."""
    (block,) = [
        b for b in python_blocks("docs/howto/testing.md") if b.startswith("import mxselect\nfrom")
    ]
    namespace: dict[str, object] = {"mxselect": mxselect}
    exec(compile(block, "docs/howto/testing.md", "exec"), namespace)
    assert namespace["selection"].hosts[0].name == "mx2.example.org"  # type: ignore[attr-defined]


def test_custom_resolver_example_is_the_tested_one() -> None:
    """The docs' StubResolver is, line for line, the class in examples/stub_resolver.py."""
    (block,) = [b for b in python_blocks("docs/howto/resolver.md") if "class StubResolver" in b]
    source = (ROOT / "examples" / "stub_resolver.py").read_text(encoding="utf-8")

    def klass(text: str) -> str:
        start = text.index("class StubResolver")
        end = text.index("\n\n", text.index("return Answer.from_addresses", start))
        return text[start:end]

    assert klass(block) == klass(source)
