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


COMMAND_MODULES = ("training", "inspection", "applications", "samplers", "code_prior", "disentanglement", "measurement", "report", "bench", "export", "serving")
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
    except BrokenPipeError:  # `vaekit models | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
    except (MemoryError, RuntimeError) as e:
        if not _is_out_of_memory(e) or os.environ.get("VAEKIT_DEBUG"):
            if os.environ.get("VAEKIT_DEBUG"):
                raise
            return _internal_error(args.command, e)
        print(f"vaekit {args.command}: error: {_out_of_memory_message(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        print(f"vaekit {args.command}: error: {_os_error_message(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 — the last line of defence: one line, not a traceback
        if os.environ.get("VAEKIT_DEBUG"):
            raise
        return _internal_error(args.command, e)
    finally:
        warnings.showwarning = shown


def _internal_error(command: str, e: BaseException) -> int:
    print(f"vaekit {command}: internal error: {type(e).__name__}: {e} (set VAEKIT_DEBUG=1 for the traceback, and please report it)",
          file=sys.stderr)
    return 1


def _is_out_of_memory(e: BaseException) -> bool:
    import torch

    text = str(e).lower()
    return (isinstance(e, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in text
            or "out of memory" in text or "not enough memory" in text)


def _out_of_memory_message(e: BaseException) -> str:
    """One line: how much was asked for (when torch says) and what to lower."""
    import re

    asked = re.search(r"allocate (\d+) bytes", str(e)) or re.search(r"allocate ([\d.]+ [KMGT]iB)", str(e))
    size = ""
    if asked:
        value = asked.group(1)
        size = f" (an allocation of {int(value) / 2**30:,.1f} GiB)" if value.isdigit() else f" (an allocation of {value})"
    return (f"out of memory{size}: the model or a batch is too large for this machine; lower --latent-dim, --hidden-dims, "
            "--channels or --batch-size (or --nll-samples for evaluation)")


def _os_error_message(e: OSError) -> str:
    """``cannot use PATH: reason`` instead of Python's ``[Errno N] ...``."""
    reason = e.strerror or str(e)
    if e.filename is None:
        return reason
    what = {13: "no permission for", 17: "already exists:", 20: "a part of this path is a file, not a folder:",
            21: "is a folder, not a file:", 28: "no space left on the device for"}.get(e.errno or 0)
    return f"{what} {e.filename}" if what else f"{reason}: {e.filename}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
