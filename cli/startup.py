"""What a stop during start-up says: the resume hint of each command that resumes, before any of
the CLI has loaded."""

from __future__ import annotations

import sys

STARTUP_HINTS = {
    "ingest": "stopped while starting, before any file was handled (no point written); "
              "run the same command again to finish",
}
"""What a stop before a command has done anything says after the reason, for a command that is
resumed by running it again: the same advice as a stop mid-run. Here, not in the command's module:
a Ctrl-C may come before that is imported, so this module imports nothing of the CLI."""


def command_name(argv: list[str] | None) -> str | None:
    """The command ``argv`` (default: the program's) runs: its first word that is not an option."""
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith("-")), None)
