"""The README's examples stay true: the fake-resolver example runs, the custom resolver is the
one in examples/stub_resolver.py (tested against Unbound in test_e2e_unbound.py)."""

from __future__ import annotations

import re
from pathlib import Path

import mxselect

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_fake_resolver_example_runs() -> None:
    """The FakeResolver example executes and its assertions hold."""
    (block,) = [b for b in BLOCKS if b.startswith("from mxselect.testing import")]
    namespace: dict[str, object] = {"mxselect": mxselect}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["selection"].hosts[0].name == "mx2.example.org"  # type: ignore[attr-defined]


def test_custom_resolver_example_is_the_tested_one() -> None:
    """The README's StubResolver is, line for line, the class in examples/stub_resolver.py."""
    (block,) = [b for b in BLOCKS if "class StubResolver" in b]
    source = (Path(__file__).resolve().parent.parent / "examples" / "stub_resolver.py").read_text(
        encoding="utf-8"
    )

    def klass(text: str) -> str:
        start = text.index("class StubResolver")
        end = text.index("\n\n", text.index("return Answer.from_addresses", start))
        return text[start:end]

    assert klass(block) == klass(source)
