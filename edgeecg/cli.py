"""`edgeecg` command line: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module under `edgeecg.commands` with two functions,
`add_arguments(parser)` and `run(args) -> int`, imported only when that subcommand runs,
so `edgeecg --help` never imports onnxruntime or anything heavier.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable

from edgeecg import __version__
from edgeecg.errors import EdgeECGError, UsageError

# name -> (module, one-line help). Exit codes: 0 fine, 1 some inputs failed, 2 bad usage.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("edgeecg.commands.synth", "generate synthetic paper-ECG images with labels and geometry"),
    "infer": ("edgeecg.commands.infer", "classify photos or scans of paper ECGs"),
    "camera": ("edgeecg.commands.camera", "capture-and-classify loop on a camera, video file or stream"),
    "eval": ("edgeecg.commands.eval", "evaluate a model bundle on a labelled dataset"),
    "serve": ("edgeecg.commands.serve", "an HTTP service with a browser page (serve extra)"),
}


def guarded(prog: str, fn: Callable[[], int | None], say: Callable[..., None] = print) -> int:
    """Run a command's body with this project's exit codes: errors become one line on stderr, never a traceback.

    Args:
        prog: the name printed before the message (e.g. "edgeecg infer").
        fn: the command's body; its return value is the exit code (None means 0).
        say: how to print (the training CLI prints on DDP rank 0 only).

    Returns:
        0 fine (or fn's code), 1 EdgeECGError, 2 UsageError, 130 interrupted.
    """
    try:
        return int(fn() or 0)
    except UsageError as err:
        say(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except EdgeECGError as err:
        say(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say(f"{prog}: interrupted", file=sys.stderr)
        return 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as argparse does, but without the usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgeecg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"edgeecg {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        # Arguments are added lazily in main() for the chosen subcommand only.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Find the subcommand first, so only its module gets imported.
    name = next((a for a in argv if not a.startswith("-")), None)
    if name in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[name][0])
        sub_parser = parser._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]
        module.add_arguments(sub_parser)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    module = importlib.import_module(args._module)
    return guarded(f"edgeecg {args.command}", lambda: module.run(args))


if __name__ == "__main__":
    sys.exit(main())
