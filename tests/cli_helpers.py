"""Running `dmwan` inside the test process, and checking its one-line errors."""

from __future__ import annotations

from dmwan_qdrant.cli.app import main


def dmwan(capsys, *args) -> tuple[int, str, str]:
    """Run `dmwan ARGS` in this process; returns (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The single ``error:`` line of ``err``; fails on a traceback or several errors."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
