"""Every command README.md and docs/*.md show (``gailkit ...``, ``python scripts/...``) parses with
its own parser as written: a renamed or removed flag, or a misspelt one in the text, fails here.
Parsing only: nothing is trained or written. A line of a code block is a whole command; a command
in the prose's backticks may be a mention (`gailkit imitate gail`, `gailkit eval --run`) and may
leave out what is required, but every flag and value it gives must parse. A command with a
placeholder the parser cannot take (``ALGO``, ``...``, ``a|b``, ``[--flag]``) is left out; ``N``,
``S`` and ``W`` stand for 1."""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from gailkit import cli
from gailkit.agents.registry import algorithms

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
STARTS = ("gailkit ", "python scripts/")
NUMBERS = {"N", "S", "W"}
UNPARSABLE = re.compile(r"\.\.\.|\||\[|\b(?:ALGO|FAMILY|MODEL|NAME|P)\b")
MISSING = ("the following arguments are required", "expected one argument")  # what a mention may leave out


def documented_commands() -> list[tuple[str, str, bool]]:
    """``(file, command, whole)`` for each command of a code block (``whole``) or of the prose's
    backticks, continuation lines joined, comments dropped, once each."""
    found: dict[str, tuple[str, bool]] = {}
    for path in DOCS:
        text = path.read_text().replace("\\\n", " ")
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
        lines = [(line.split("  #")[0], True) for block in blocks for line in block.splitlines()]
        lines += [(line, False) for line in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))]
        for line, whole in lines:
            command = " ".join(line.split())
            if command.startswith(STARTS) and not UNPARSABLE.search(command) and not found.get(command, ("", False))[1]:
                found[command] = (path.name, whole)
    return sorted((name, command, whole) for command, (name, whole) in found.items())


COMMANDS = documented_commands()


class _Parsed(Exception):
    """Raised by the patched ``parse_args`` once a script's flags have parsed: the script stops there."""


def parse_script(script: Path, argv: list[str], monkeypatch) -> None:
    """Run ``script`` up to its ``parse_args`` and no further; argparse exits 2 on a bad flag."""
    parse_args = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        parse_args(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [f"scripts/{script.name}", *argv])
    with pytest.raises(_Parsed):
        runpy.run_path(str(script), run_name="__main__")


def parse_gailkit(argv: list[str]) -> None:
    """Both stages of ``gailkit``'s parsing: the command's flags, then an algorithm's (``imitate``)."""
    args, extra = cli.build_parser().parse_known_args(argv)
    assert not extra or getattr(args, "accepts_extra", None), f"unrecognized arguments: {extra}"
    if args.command == "imitate" and not args.help:
        args.algo_options = extra
        name, rest = cli._named_algorithm(args)
        if name is not None:  # `gailkit imitate` alone is a mention
            cli._algorithm_parser(name, algorithms()[name]).parse_args(rest)


def test_the_docs_show_commands_of_every_kind():
    """The extraction itself: if it found few commands, the test below would prove little."""
    scripts = {command.split()[1] for _, command, _ in COMMANDS if command.startswith("python ")}
    whole = sum(whole for _, _, whole in COMMANDS)
    assert len(COMMANDS) >= 100 and whole >= 30 and len(scripts) >= 15, \
        f"{len(COMMANDS)} commands, {whole} of code blocks, {len(scripts)} scripts"
    assert any(command.startswith("gailkit imitate dac") for _, command, _ in COMMANDS)


@pytest.mark.parametrize("doc, command, whole", COMMANDS, ids=[c for _, c, _ in COMMANDS])
def test_a_documented_command_parses(doc, command, whole, monkeypatch, capsys):
    argv = ["1" if word in NUMBERS else word for word in shlex.split(command)]
    try:
        if argv[0] == "gailkit":
            parse_gailkit(argv[1:])
        else:
            parse_script(ROOT / argv[1], argv[2:], monkeypatch)
    except SystemExit as e:  # 0: a --help printed
        err = capsys.readouterr().err.strip()
        if e.code != 0 and (whole or not any(text in err for text in MISSING)):
            pytest.fail(f"{doc}: `{command}` does not parse: {err}")


def test_a_misspelt_flag_fails_this_check(monkeypatch, capsys):
    """The check can fail: a flag a script does not take exits 2, with one line naming it."""
    with pytest.raises(SystemExit) as exit_:
        parse_script(ROOT / "scripts" / "bench_envs.py", ["--seed", "3"], monkeypatch)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert "bench_envs.py: error: unrecognized arguments: --seed 3 (" in err, err
    with pytest.raises(SystemExit):
        parse_gailkit(["imitate", "dac", "--env", "CartPole-v1", "--n-epochs", "3"])


# -- the Python blocks -------------------------------------------------------------------------------
def python_blocks() -> list[tuple[str, str]]:
    """``(name, source)`` of every ```python block of the docs, numbered within its file."""
    found = []
    for path in DOCS:
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S)):
            found.append((f"{path.name}#{i + 1}", block))
    return found


BLOCKS = python_blocks()


def _callee(node: ast.expr, names: dict):
    """The object a call's ``func`` names, for an imported name or an attribute path from one."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _callee(node.value, names)
        return getattr(owner, node.attr) if owner is not None else None
    return None


def check_python_block(source: str) -> list[str]:
    """What in ``source`` is not true of gailkit as it is: an import that fails, a call of an imported
    name (or an attribute of one) whose positional and keyword arguments its signature does not take,
    a ``gym.make`` of an id that is not registered. Only imports run; nothing is trained or written."""
    import gymnasium as gym

    import gailkit  # noqa: F401  (registers the gailkit/ ids)

    tree = ast.parse(source)
    names: dict = {}
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            try:
                exec(compile(ast.Module([node], []), "<docs>", "exec"), {}, names)
            except ImportError as e:
                problems.append(f"line {node.lineno}: {e}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args) \
                or any(k.arg is None for k in node.keywords):
            continue
        try:
            func = _callee(node.func, names)
        except AttributeError as e:
            problems.append(f"line {node.lineno}: {e}")
            continue
        if func is None or not callable(func):
            continue
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):  # a builtin without one
            continue
        try:
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as e:
            problems.append(f"line {node.lineno}: {ast.unparse(node.func)}(...): {e}")
        if func is gym.make and node.args and isinstance(node.args[0], ast.Constant):
            try:
                gym.spec(node.args[0].value)
            except gym.error.Error as e:
                problems.append(f"line {node.lineno}: {e}")
    return problems


def test_the_docs_show_python_blocks_that_call_gailkit():
    assert len(BLOCKS) >= 3, [name for name, _ in BLOCKS]


@pytest.mark.parametrize("name, source", BLOCKS, ids=[name for name, _ in BLOCKS])
def test_a_documented_python_block_imports_and_calls_what_exists(name, source):
    assert not check_python_block(source), f"{name}: {check_python_block(source)}"


def test_a_renamed_keyword_or_a_missing_name_fails_this_check():
    """The check can fail: a keyword train_vae does not take, a name gailkit does not export, an id not
    registered."""
    source = ("import gymnasium as gym\nfrom gailkit.worldmodels.train import train_vae\n"
              "from gailkit.agents import NoSuchThing\n"
              "train_vae('data', 'model', latent=16)\ngym.make('gailkit/NoSuchEnv-v0')\n")
    problems = check_python_block(source)
    assert len(problems) == 3, problems
    assert "NoSuchThing" in problems[0] and "'latent'" in problems[1] and "NoSuchEnv" in problems[2], problems
