"""The ``vaekit`` command: the library's API as subcommands with the same names.

Every user error (unknown model or option, bad data, missing file) ends with one line
on stderr and a non-zero exit status, never a traceback (set VAEKIT_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any, Callable, NoReturn, Sequence

__all__ = ["main", "build_parser"]


# -- parser and entry point -----------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Subcommand parsers: no abbreviated flags (``--epoch`` is a typo, not ``--epochs``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """One line, like every other vaekit error (argparse would print the whole usage first)."""
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


COMMAND_MODULES = ("training", "inspection", "applications")
"""The modules of ``vaekit.cli`` that add commands: each has ``add_commands(subparsers) -> {name: handler}``."""


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[..., int]]]:
    """The ``vaekit`` parser and its command handlers by name."""
    import importlib

    parser = _Parser(prog="vaekit", description="Autoencoders and variational autoencoders: train, evaluate, sample, use.")
    parser.add_argument("--version", action="version", version=f"vaekit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands: dict[str, Callable[..., int]] = {}
    for name in COMMAND_MODULES:
        commands.update(importlib.import_module(f"vaekit.cli.{name}").add_commands(sub))
    return parser, commands


def _version() -> str:
    from vaekit._version import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    from vaekit.cli.training import split_preset_flags

    parser, commands = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, extras = split_preset_flags(parser, argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from vaekit.errors import VaekitError

    def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"vaekit {args.command}: warning: {message}", file=sys.stderr)

    shown, warnings.showwarning = warnings.showwarning, one_line_warning  # the message, not the library line
    try:
        if args.command == "train":
            return commands["train"](args, extras)
        return commands[args.command](args)
    except VaekitError as e:
        print(f"vaekit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vaekit {args.command}: interrupted; files already written are intact (re-run `vaekit train` with the same --out to resume)", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as e:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        print(f"vaekit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 — the last line of defence: one line, not a traceback
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        print(f"vaekit {args.command}: internal error: {type(e).__name__}: {e} (set VAEKIT_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
