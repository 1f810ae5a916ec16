"""Test helpers: run the CLI in-process and check its exit code and output."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from edge.cli.main import main


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*args: str, expect: int = 0) -> CliResult:
    """Run ``edge-inspect ARGS``; fail the test unless it exits with ``expect``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse exits on usage errors
            code = int(exc.code or 0)
    result = CliResult(code, out.getvalue(), err.getvalue())
    assert code == expect, f"edge-inspect {' '.join(args)} exited {code}, expected {expect}:\n{result.err}"
    return result


def one_line_error(result: CliResult) -> str:
    """The single error line of a failed command (and proof there is no traceback)."""
    lines = [ln for ln in result.err.splitlines() if "error:" in ln]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]
