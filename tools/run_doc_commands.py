"""Run every command the README and docs show, as typed, so that none of them can rot.

    python tools/run_doc_commands.py            run every ```bash block of README.md and docs/**/*.md
    python tools/run_doc_commands.py --list     list the blocks and the rule each runs under, run nothing
    python tools/run_doc_commands.py --only docs/benchmarks.md     only the blocks of pages (or PAGE:LINE) named

Each block runs with bash (-e: a failing line fails the block) in a scratch copy of the repository, so a command
that writes results, logs or outputs writes them there, never over what is committed.  A block passes when it
exits 0 and prints no Python traceback.  The line before a block's fence may give another rule, as an HTML
comment (a reader of the rendered page does not see it):

    <!-- doc-run: skip: REASON -->   not run: a placeholder host, another machine; the reason is printed
    <!-- doc-run: serve: TEXT -->    runs until it prints TEXT (a server, a worker), then Ctrl-C must stop it
                                     with status 0
    <!-- doc-run: exit=N -->         its point is a failure: it must exit with status N (and no traceback);
                                     exit=0|1: each line's status is a verdict (a benchmark's goals, met or
                                     missed), either will do; the lines run one by one

Only loopback is used: the commands name no other host, and those that would are skipped.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
RULE = re.compile(r"<!-- doc-run: (skip: .+|serve: .+|exit=\d+(?:\|\d+)*) -->")
BLOCK_TIMEOUT_S = 1800.0
SERVE_TIMEOUT_S = 120.0
IGNORED = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis",
                                 ".benchmarks", "*.egg-info", "data", "logs")


class RuleError(ValueError):
    """A block's rule comment is not one of the three this runner knows."""


@dataclass(frozen=True)
class Block:
    """One fenced bash block: where it is, what it says, and the rule it runs under."""

    where: str
    text: str
    rule: str = "run"

    @property
    def command(self) -> str:
        return self.text.strip()


def blocks(markdown: str, where: str) -> list[Block]:
    """The ```bash blocks of one markdown text, each with the rule on the line before its fence.

    >>> [(b.where, b.rule, b.command) for b in blocks("x\\n<!-- doc-run: exit=0|1 -->\\n```bash\\nfalse\\n```", "R.md")]
    [('R.md:3', 'exit=0|1', 'false')]
    >>> blocks("<!-- doc-run: later -->\\n```bash\\ntrue\\n```\\n", "R.md")
    Traceback (most recent call last):
    ...
    run_doc_commands.RuleError: R.md:2: unknown doc-run rule '<!-- doc-run: later -->'
    """
    found = []
    for fence in FENCE.finditer(markdown):
        line = markdown.count("\n", 0, fence.start()) + 1
        before = markdown[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        rule = "run"
        if before.startswith("<!-- doc-run"):
            if (given := RULE.fullmatch(before)) is None:
                raise RuleError(f"{where}:{line}: unknown doc-run rule {before!r}")
            rule = given.group(1)
        found.append(Block(f"{where}:{line}", fence.group(1), rule))
    return found


def documented() -> list[Block]:
    """Every block of README.md and docs/, in reading order."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [block for page in pages for block in blocks(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))]


def run(block: Block, scratch: Path) -> str | None:
    """Run block in scratch; None if it kept its rule, else why not."""
    if block.rule.startswith("serve: "):
        return _serve(block, scratch, block.rule.removeprefix("serve: "))
    if not block.rule.startswith("exit="):
        return _run(block.command, ["0"], scratch)
    expected = block.rule.removeprefix("exit=").split("|")
    for line in block.command.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and (why := _run(line, expected, scratch)) is not None:
            return f"{line.split('#')[0].strip()}: {why}"
    return None


def _run(command: str, expected: list[str], scratch: Path) -> str | None:
    """Run command (bash -e) in scratch; None if it exited with an expected status and printed no traceback."""
    try:
        done = subprocess.run(["bash", "-e", "-c", command], cwd=scratch, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"still running after {BLOCK_TIMEOUT_S:g} s"
    output = done.stdout  # stderr in it, in the order written: a failure's tail shows what failed
    if str(done.returncode) not in expected:
        return f"exit status {done.returncode}, expected {' or '.join(expected)}\n{_tail(output)}"
    if "Traceback (most recent call last)" in output:
        return f"printed a traceback\n{_tail(output)}"
    return None


def _serve(block: Block, scratch: Path, ready: str) -> str | None:
    """Start a long-running command, wait for ready in its output, press Ctrl-C, and expect status 0."""
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(["bash", "-c", block.command], cwd=scratch, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        said = ""
        while ready not in said and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
            output.seek(0)
            said = output.read()
        if ready not in said:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return f"never printed {ready!r} (status {process.returncode})\n{_tail(said)}"
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the whole foreground group
        try:
            code = process.wait(timeout=SERVE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return f"did not stop within {SERVE_TIMEOUT_S:g} s of Ctrl-C"
        output.seek(0)
        said = output.read()
    if code != 0 or "Traceback (most recent call last)" in said:
        return f"stopped with status {code}\n{_tail(said)}"
    return None


def _tail(output: str, lines: int = 40) -> str:
    return "\n".join("    " + line for line in output.strip().splitlines()[-lines:])


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every command README.md and docs/ show, as typed.")
    parser.add_argument("--list", action="store_true", help="list the blocks and their rules; run nothing")
    parser.add_argument("--only", nargs="+", metavar="PAGE[:LINE]", help="only the blocks of these pages or lines")
    args = parser.parse_args()
    try:
        found = documented()
    except RuleError as error:
        print(f"run_doc_commands: {error}", file=sys.stderr)
        return 2
    if args.only:
        found = [block for block in found if block.where in args.only or block.where.split(":")[0] in args.only]
    if args.list:
        for block in found:
            print(f"{block.where:28} {block.rule:10.10}  {block.command.splitlines()[0]}")
        return 0
    failed = skipped = 0
    with tempfile.TemporaryDirectory(prefix="blur-docs-") as scratch:
        copy = Path(scratch) / "blur-suite"
        shutil.copytree(ROOT, copy, ignore=IGNORED, symlinks=True)
        for number, block in enumerate(found, 1):
            first = block.command.splitlines()[0]
            if block.rule.startswith("skip: "):
                skipped += 1
                print(f"[{number}/{len(found)}] skip {block.where}: {block.rule.removeprefix('skip: ')}", flush=True)
                continue
            started = time.monotonic()
            why = run(block, copy)
            verdict = "ok  " if why is None else "FAIL"
            print(f"[{number}/{len(found)}] {verdict} {block.where} ({time.monotonic() - started:.1f} s): {first}",
                  flush=True)
            if why is not None:
                failed += 1
                print(f"    {why}", flush=True)
    print(f"documented commands: {len(found) - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
