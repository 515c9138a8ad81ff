"""The README's `presets`, `build` and `profile` blocks are what those commands print.

Each fenced block that starts with ``$ mvit-lab presets|build|profile`` is run through
``main``. Every line that does not depend on the machine (tables, parameter counts, GFLOPs,
shapes, errors) must match the real output exactly; timings, throughput, memory and MFU lines
are compared by their shape only. ``profile`` runs with ``--flops-only`` (the timing run is the
machine-dependent part). A block with a ``...`` line shows an excerpt: its lines must appear in
the output in order.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mvit_lab.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
COMMANDS = ("presets", "build", "profile")
# lines whose numbers depend on the machine: compared with the numbers masked
TIMED = re.compile(r"^(forward: .* in )[0-9.]+( s .*)$")
MACHINE = ("infer on ", "train on ", "throughput:", "as timed:", "attention kernel:", "latency:",
           "memory:", "MFU:")


def _blocks() -> list[tuple[str, list[str]]]:
    """``(command, shown output lines)`` for each ``$ mvit-lab <COMMANDS>`` in the README."""
    out: list[tuple[str, list[str]]] = []
    in_block = False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
            out.append(("", []))  # a block's end ends its last command's output
            continue
        if not in_block:
            continue
        if line.startswith("$ "):  # another command's lines are not ours (cmd "")
            ours = line.startswith("$ mvit-lab ") and line.split()[2] in COMMANDS
            out.append((line[2:] if ours else "", []))
        elif out:
            out[-1][1].append(line)
    return [(cmd, lines) for cmd, lines in out if cmd]


def _comparable(lines: list[str]) -> list[str]:
    kept = []
    for line in lines:
        line = line.rstrip()
        if not line or line.startswith(MACHINE) or line.startswith("resolved config written"):
            continue
        kept.append(TIMED.sub(r"\1<s>\2", line))
    return kept


BLOCKS = _blocks()


def test_the_readme_shows_each_command():
    assert {cmd.split()[1] for cmd, _ in BLOCKS} == set(COMMANDS)


@pytest.mark.parametrize(("command", "shown"), [
    pytest.param(cmd, lines, id=cmd, marks=[pytest.mark.slow] if "16x4" in cmd else [])
    for cmd, lines in BLOCKS])
def test_readme_block_is_what_the_command_prints(command, shown, tmp_path, capsys):
    argv = shlex.split(command)[1:]
    if "--save" in argv:  # not into the checkout
        argv[argv.index("--save") + 1] = str(tmp_path / "arch.json")
    if argv[0] == "profile":
        argv.append("--flops-only")
    main(argv)
    captured = capsys.readouterr()
    printed = _comparable((captured.out + captured.err).splitlines())
    expected = _comparable(shown)
    if "..." in expected:
        rest = iter(printed)
        missing = [line for line in expected if line != "..." and line not in rest]
        assert not missing, f"README lines not printed by `{command}`: {missing}"
    else:
        assert printed == expected
    for line in shown:  # the machine-dependent lines keep their shape
        if line.startswith("forward:"):
            assert TIMED.match(line), line


def test_search_spaces_readme_lists_every_space_and_only_real_ones():
    """It said sweeps were not implemented, and listed no file."""
    folder = README.parent / "search_spaces"
    listed = set(re.findall(r"^\| `([^`]+\.yaml)` \|", (folder / "README.md").read_text(), re.M))
    assert listed == {p.name for p in folder.glob("*.yaml")}
    assert "not implemented" not in (folder / "README.md").read_text()
