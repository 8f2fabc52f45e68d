"""How the help of every command reads: `plain_help` over the Click tree that Typer builds."""

from __future__ import annotations

import re
from typing import Any

LIST_ITEM = re.compile(r"^(?:[-*] |\.\w+: )")
"""A help line that starts a list item: a bullet, or a file suffix's entry (``.npy: ...``)."""


def reflow(text: str) -> str:
    """A docstring's paragraphs as one line each, so that the terminal wraps them, not the
    source's line breaks (which left "fused global and local-token / score" on two lines). A line
    that starts a list item (`LIST_ITEM`) keeps its own line."""
    paragraphs = []
    for block in text.strip().split("\n\n"):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        out: list[str] = []
        for line in lines:
            if out and not LIST_ITEM.match(line):
                out[-1] += " " + line
            else:
                out.append(line)
        paragraphs.append("\n".join(out))
    return "\n\n".join(paragraphs)


def plain_help(command: Any) -> Any:
    """``command`` (a Click command tree) with help that names values as users write them.

    Typer shows a Python type beside every option (``<bool>``, ``<str>``, ``<list[Path]>``); the
    tools these users know show nothing after a flag and a word in capitals after an option that
    takes a value (``--collection COLLECTION``). Metavars given by a command stay as they are.
    """
    from typer.core import TyperArgument, TyperOption

    if command.help:
        command.help = reflow(command.help)
    for param in command.params:
        if isinstance(param, TyperOption):
            if param.is_flag or param.count:
                param.metavar = ""
            elif param.metavar is None:
                longest = max(param.opts, key=len).lstrip("-")
                param.metavar = longest.replace("-", "_").upper()
        elif isinstance(param, TyperArgument):
            param.display_type_rich = lambda ctx: None  # the argument's name says it
    make_help_option = command.get_help_option

    def get_help_option(ctx: Any) -> Any:  # made per context, after the params above
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
    return command
