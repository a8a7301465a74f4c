"""The documentation's examples run, and the reference documents exactly the public names.

Every fenced block of the README and of ``docs/*.md``, ``docs/howto/*.md`` is checked, page by
page, in order:

* ```` ```python ```` blocks are executed, each page in its own namespace, so a block may use
  what an earlier block of the same page defined; top-level ``await`` is allowed (the block
  then runs in ``asyncio.run``). A block that talks to "your resolver" names
  ``127.0.0.1`` port ``5353``: the test serves ``examples/demo.zone`` there (the loopback fault
  server of the test harness on a free port, substituted for 5353), so nothing but loopback
  is ever asked.
* ```` ```pycon ```` blocks are doctests in the same namespace: the output shown is compared.
* ```` ```console ```` blocks: each ``$ mxselect ...`` line is run (as ``python -m mxselect``,
  from the root of the checkout) and its stdout compared with the lines below it. Every
  command must answer offline (``--zone``).
* An example that imports an optional extra that is not installed (aiodns, aiosmtplib) skips
  the rest of its page, except under ``CI=true``, where every extra is installed.
* A block right after ``<!-- not-run: REASON -->`` is skipped; the skipped blocks are listed in
  ``NOT_RUN`` below, with their reasons, so that adding one is a visible decision.

Other blocks (```` ```sh ````, ```` ```text ````, plain ```` ``` ````) are commands to copy or
output to read, not run. The pages run from the root of the checkout (``examples/demo.zone``
is a relative path in them).
"""

from __future__ import annotations

import ast
import asyncio
import doctest
import importlib
import importlib.metadata
import inspect
import ipaddress
import os
import pkgutil
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.resolver
import pytest

import mxselect

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(
    [ROOT / "README.md", *DOCS.glob("*.md"), *DOCS.glob("howto/*.md")],
    key=lambda p: p.relative_to(ROOT).as_posix(),
)

#: The blocks not run, as (page, reason): few, and each for a reason the test cannot supply.
NOT_RUN = [
    ("docs/check.md", "connects to port 25 of real servers (tests/test_check_probe.py)"),
    ("docs/howto/mta.md", "needs aiosmtplib and SMTP servers (tests/test_example_mta.py)"),
]

#: Modules of the optional extras that some examples import: without them (outside CI, where
#: every extra is installed) the rest of that page is skipped.
OPTIONAL = {"aiodns": "aiodns", "aiosmtplib": "examples", "cryptography": "dane"}

#: The port the pages give for "your recursive resolver" (replaced by the test server's).
DOC_PORT = "5353"

FENCE = re.compile(
    r"^(?P<fence>```+)(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)
NOT_RUN_MARK = re.compile(r"<!--\s*not-run:\s*(?P<reason>[^<>]+?)\s*-->\Z")
#: Info strings of the blocks that are not run: commands to copy, output, and MyST directives
#: (``{toctree}``, ``{eval-rst}`` for the reference, ``{include}``).
OTHER_LANGS = ("sh", "text", "")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    body: str
    not_run: str | None

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.lang})"


def blocks_of(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    page = path.relative_to(ROOT).as_posix()
    found = []
    for match in FENCE.finditer(text):
        mark = NOT_RUN_MARK.search(text[: match.start()].rstrip())
        found.append(
            Block(
                page=page,
                line=text.count("\n", 0, match.start("body")) + 1,
                lang=match.group("info").strip().split(" ")[0],
                body=match.group("body"),
                not_run=" ".join(mark.group("reason").split()) if mark else None,
            )
        )
    return found


ALL_BLOCKS = [block for path in PAGES for block in blocks_of(path)]
RUN_LANGS = ("python", "pycon", "console")


@pytest.fixture(scope="module")
def doc_server() -> Any:
    """The demo zone, served on loopback like a recursive resolver."""
    from harness.faultserver import FaultServer

    server = FaultServer((ROOT / "examples" / "demo.zone").read_text(encoding="utf-8"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where the examples tried to go beyond loopback: a forgotten ``resolver=`` would ask
    the system's resolver. Such an attempt fails at once and is recorded (the drivers turn
    a resolver's exception into a temporary failure, so the example alone would not fail)."""
    violations: list[str] = []

    def read_resolv_conf(self: object, *args: object, **kwargs: object) -> None:
        violations.append("the system's resolver configuration (resolver=None)")
        raise OSError("documentation examples never use the system's resolver")

    # dnspython reads /etc/resolv.conf only for a resolver built with the system configuration.
    monkeypatch.setattr(dns.resolver.BaseResolver, "read_resolv_conf", read_resolv_conf)

    def check(address: object) -> None:
        if isinstance(address, tuple):
            host = str(address[0])
            try:
                loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                violations.append(repr(address))
                raise OSError(f"documentation examples reach loopback only, not {address}")

    real_connect, real_connect_ex, real_sendto = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.socket.sendto,
    )

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        check(args[-1])
        return real_sendto(self, data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    return violations


def run_python(block: Block, namespace: dict[str, Any], port: int) -> None:
    source = block.body.replace(DOC_PORT, str(port))
    code = compile(
        "\n" * (block.line - 1) + source,
        block.page,
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        asyncio.run(result)


def run_pycon(block: Block, namespace: dict[str, Any], port: int) -> None:
    source = block.body.replace(DOC_PORT, str(port))
    test = doctest.DocTestParser().get_doctest(
        source, namespace, str(block), block.page, block.line - 1
    )
    assert test.examples, f"{block}: a pycon block without a '>>>' example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    namespace.update(test.globs)  # the DocTest ran in a copy: later blocks see its names
    assert runner.failures == 0, "".join(report)


def run_console(block: Block) -> int:
    """Run each ``$ mxselect ...`` of the block; return how many commands ran."""
    commands = 0
    chunks = re.split(r"^\$ ", block.body, flags=re.M)
    assert chunks[0] == "", f"{block}: a console block starts with a '$ ' command"
    for chunk in chunks[1:]:
        command, _, expected = chunk.partition("\n")
        args = shlex.split(command)
        assert args[0] == "mxselect", f"{block}: only mxselect commands are run: {command}"
        assert "--zone" in args, f"{block}: a command must answer offline (--zone): {command}"
        result = subprocess.run(
            [sys.executable, "-m", "mxselect", *args[1:]],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert result.stdout == expected, f"{block}: {command}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        commands += 1
    return commands


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_examples_run(
    path: Path,
    doc_server: Any,
    loopback_only: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every python, pycon and console block of the page runs and shows what it says."""
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in blocks_of(path):
        if block.lang not in RUN_LANGS or block.not_run is not None:
            continue
        if block.lang == "python":
            try:
                run_python(block, namespace, doc_server.port)
            except ModuleNotFoundError as exc:  # an example of an optional extra
                if exc.name not in OPTIONAL or os.environ.get("CI") == "true":
                    raise
                pytest.skip(
                    f"{block}: {exc.name} is not installed (pip install -e .[{OPTIONAL[exc.name]}])"
                )
        elif block.lang == "pycon":
            run_pycon(block, namespace, doc_server.port)
        else:
            run_console(block)
        assert loopback_only == [], f"{block} reached beyond loopback"
    capsys.readouterr()  # what the examples print is theirs; the doctests compared theirs


def test_examples_are_counted_and_the_skipped_ones_listed() -> None:
    """The blocks not run are exactly NOT_RUN, each with its reason; most blocks run."""
    skipped = [(b.page, b.not_run) for b in ALL_BLOCKS if b.not_run is not None]
    assert skipped == NOT_RUN
    counts = {lang: 0 for lang in RUN_LANGS}
    for block in ALL_BLOCKS:
        if block.lang in counts and block.not_run is None:
            counts[block.lang] += 1
    print(f"doc blocks run: {counts}; not run: {len(skipped)}: {skipped}")
    assert sum(counts.values()) >= 10 * len(skipped)
    unknown = [
        str(b)
        for b in ALL_BLOCKS
        if b.lang not in (*RUN_LANGS, *OTHER_LANGS) and not b.lang.startswith("{")
    ]
    assert unknown == []  # a typo (```pyhton) would silently skip a block


# ------------------------------------------------------------ the reference and __all__

AUTODOC = re.compile(r"^\.\. auto(?:module|class|exception|function|data)::\s+(\S+)", re.M)


def documented() -> tuple[set[str], set[str]]:
    """(modules, objects) named by the autodoc directives of docs/reference.md."""
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    modules = set(re.findall(r"^\.\. automodule::\s+(\S+)", text, re.M))
    objects = set(AUTODOC.findall(text)) - modules
    return modules, objects


def public_modules() -> set[str]:
    return {
        f"mxselect.{info.name}"
        for info in pkgutil.iter_modules(mxselect.__path__)
        if not info.name.startswith("_")
    }


def test_every_public_module_is_in_the_reference() -> None:
    modules, _ = documented()
    assert modules == public_modules()


def test_reference_documents_exactly_the_public_names() -> None:
    """Every name of ``mxselect.__all__`` and of each public module's ``__all__`` is documented
    (a re-exported object once, under either name); nothing else is."""
    modules, objects = documented()
    public: dict[str, object] = {f"mxselect.{n}": getattr(mxselect, n) for n in mxselect.__all__}
    for module_name in sorted(modules):
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # an optional extra (aiodns) that is not installed
            if os.environ.get("CI") == "true":
                raise
            continue
        for name in module.__all__:
            public[f"{module_name}.{name}"] = getattr(module, name)
    # An automodule directive documents the module's own names (:members: by default).
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    for module_name in modules:
        options = text.split(f".. automodule:: {module_name}\n", 1)[1].split("```", 1)[0]
        if ":no-members:" not in options and module_name in sys.modules:
            objects |= {f"{module_name}.{n}" for n in sys.modules[module_name].__all__}

    def aliases(name: str) -> set[str]:
        """The public names of the same object: ``mxselect.X`` and ``mxselect.module.X``."""
        short = name.rpartition(".")[2]
        return {
            other
            for other, obj in public.items()
            if other.rpartition(".")[2] == short and obj is public[name]
        }

    undocumented = sorted(name for name in public if not aliases(name) & objects)
    assert undocumented == []
    not_public = sorted(name for name in objects if name not in public)
    assert not_public == []


def test_version_comes_from_the_package_metadata() -> None:
    """One place: pyproject.toml -> the installed metadata -> mxselect.__version__ -> the CLI
    and the docs."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        declared = tomllib.load(f)["project"]["version"]
    assert mxselect.__version__ == importlib.metadata.version("mxselect") == declared
    out = subprocess.run(
        [sys.executable, "-m", "mxselect", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    assert out == f"mxselect {mxselect.__version__}\n"
    assert 'version = "' not in (ROOT / "mxselect" / "__init__.py").read_text(encoding="utf-8")


def test_not_run_mta_excerpt_is_the_tested_file() -> None:
    """The MTA loop shown (not run: it needs SMTP servers) is examples/mta.py's, line for line;
    tests/test_example_mta.py runs that file."""
    (block,) = [b for b in blocks_of(DOCS / "howto" / "mta.md") if b.not_run is not None]
    assert block.body in (ROOT / "examples" / "mta.py").read_text(encoding="utf-8")
