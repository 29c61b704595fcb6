"""The README and docs/ stay true: links resolve, every `dsnet ...` command parses, the README stays short.

The command check parses each documented command line with the real parser, so a renamed or removed flag
fails here instead of in a newcomer's shell.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dsnet.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
README_MAX_LINES = 200

_FENCE = re.compile(r"^(\s*)(```|~~~)(.*)$")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_SRC = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
_SHELL_LANGS = {"", "bash", "sh", "shell", "console", "text"}
_GLOB = re.compile(r"[*?\[]")
_SHELL_STOP = {"&", "&&", ";", "|", "||", ">", ">>", "2>", "2>&1"}
# Paths a documented command reads from this repository (outputs under runs/ and data under ../shared are not).
_REPO_INPUTS = ("configs/", "demo/", "benchmarks/configs/", "benchmarks/")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _split_fences(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Prose lines (fenced blocks blanked out) and the fenced blocks as (language, lines)."""
    prose: list[str] = []
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    marker = ""
    for line in text.splitlines():
        m = _FENCE.match(line)
        if current is None and m:
            marker, lang, current = m.group(2), m.group(3).strip().lower(), []
            blocks.append((lang, current))
            prose.append("")
        elif current is not None and m and m.group(2) == marker and not m.group(3).strip():
            current = None
            prose.append("")
        elif current is not None:
            current.append(line)
            prose.append("")
        else:
            prose.append(line)
    return prose, blocks


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*|_(?=\W)|(?<=\W)_", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    prose, _ = _split_fences(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    anchors = set()
    for line in prose:
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links(path: Path) -> list[str]:
    prose, _ = _split_fences(path.read_text(encoding="utf-8"))
    text = "\n".join(re.sub(r"`[^`]*`", "``", line) for line in prose)  # no links inside inline code
    return _LINK.findall(text) + _HTML_SRC.findall(text)


def _command_lines(path: Path) -> list[str]:
    """Every `dsnet ...` (or `... -m dsnet ...`) line of the shell blocks, continuations joined."""
    _, blocks = _split_fences(path.read_text(encoding="utf-8"))
    commands = []
    for lang, lines in blocks:
        if lang not in _SHELL_LANGS:
            continue
        joined: list[str] = []
        buffer = ""
        for line in lines:
            stripped = line.rstrip()
            if stripped.endswith("\\"):
                buffer += stripped[:-1] + " "
                continue
            joined.append(buffer + stripped)
            buffer = ""
        if buffer:
            joined.append(buffer)
        for line in joined:
            line = re.sub(r"^\s*\$\s+", "", line)
            if re.match(r"^\s*(?:[A-Z_]+=\S*\s+)*dsnet\s", line) or " -m dsnet " in line:
                commands.append(line.strip())
    return commands


def _dsnet_argv(line: str) -> list[str]:
    """The arguments after `dsnet`, up to a comment or a shell operator."""
    tokens = shlex.split(line, comments=True)
    start = next(i for i, t in enumerate(tokens) if t == "dsnet") + 1
    argv = []
    for token in tokens[start:]:
        if token in _SHELL_STOP:
            break
        argv.append(token)
    return argv


def _id(value: object) -> str:
    return _rel(value) if isinstance(value, Path) else " ".join(str(value).split())[:90]


def _all(kind):
    return [(path, item) for path in DOCS for item in kind(path)]


def test_the_docs_exist_and_the_readme_links_every_page() -> None:
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert len(pages) >= 7, [_rel(p) for p in pages]
    readme_targets = {Path(t.split("#")[0]).as_posix() for t in _links(ROOT / "README.md")}
    missing = [_rel(p) for p in pages if _rel(p) not in readme_targets]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_the_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines (limit {README_MAX_LINES})"


@pytest.mark.parametrize("path,target", _all(_links), ids=_id)
def test_every_relative_link_and_image_resolves(path: Path, target: str) -> None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
        return
    file_part, _, anchor = target.partition("#")
    resolved = (path.parent / file_part).resolve() if file_part else path
    assert resolved.exists(), f"{_rel(path)}: link {target!r} points to a missing file"
    assert ROOT in resolved.parents or resolved == ROOT, f"{_rel(path)}: link {target!r} leaves the repository"
    if anchor and resolved.suffix == ".md":
        assert anchor in _anchors(resolved), f"{_rel(path)}: {target!r}: no heading with anchor #{anchor}"


@pytest.mark.parametrize("path,line", _all(_command_lines), ids=_id)
def test_every_documented_command_parses(path: Path, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    if re.search(r"<[^>]+>", line):  # a placeholder the reader fills in
        return
    argv = _dsnet_argv(line)
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as stop:
        if stop.code == 0 and {"-h", "--help", "--version"} & set(argv):
            return
        pytest.fail(f"{_rel(path)}: `dsnet {' '.join(argv)}` does not parse: {capsys.readouterr().err.strip()}")
    if hasattr(args, "overrides"):  # as dsnet.cli.main: key=value overrides may follow the options
        unknown = [x for x in unknown if "=" not in x or x.startswith("-")]
    assert not unknown, f"{_rel(path)}: `dsnet {' '.join(argv)}`: unknown arguments {unknown}"
    for token in argv:
        value = token.split("=", 1)[-1]
        if value.startswith(_REPO_INPUTS) and not value.startswith("benchmarks/results/") and not _GLOB.search(value):
            assert (ROOT / value).exists(), f"{_rel(path)}: `{line}` names {value}, which is not in the repository"


def test_the_command_check_sees_the_commands() -> None:
    """Guards the parser of the docs themselves: if it found nothing, the test above would pass vacuously."""
    lines = [line for _, line in _all(_command_lines)]
    assert len(lines) >= 30
    commands = {_dsnet_argv(line)[0] for line in lines if _dsnet_argv(line)}
    assert {"train", "eval", "predict", "export", "bench", "pretrain", "ablate", "rf", "erf"} <= commands


def test_cli_page_documents_every_option_of_every_command() -> None:
    """docs/cli.md holds each command's options: one section per command naming all of its flags."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = {}
    for name, command in sub.choices.items():
        sections = re.findall(rf"^### `dsnet {re.escape(name)}`\s*$(.*?)(?=^##)", text + "\n##", re.M | re.S)
        assert len(sections) == 1, f"docs/cli.md: expected one section '### `dsnet {name}`', found {len(sections)}"
        flags = [s for a in command._actions for s in a.option_strings if s not in ("-h", "--help")]
        absent = [flag for flag in flags if not re.search(rf"`{re.escape(flag)}[` /=\[]", sections[0])]
        if absent:
            missing[name] = absent
    assert not missing, f"docs/cli.md leaves out options: {missing}"
