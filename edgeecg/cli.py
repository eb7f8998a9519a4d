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

from edgeecg import __version__
from edgeecg.errors import EdgeECGError, UsageError

# name -> (module, one-line help). Exit codes: 0 fine, 1 some inputs failed, 2 bad usage.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("edgeecg.commands.synth", "generate synthetic paper-ECG images with labels and geometry"),
    "infer": ("edgeecg.commands.infer", "classify photos or scans of paper ECGs"),
    "camera": ("edgeecg.commands.camera", "capture-and-classify loop on a camera, video file or stream"),
    "eval": ("edgeecg.commands.eval", "evaluate a model bundle on a labelled dataset"),
}


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
    try:
        return int(module.run(args) or 0)
    except UsageError as err:
        print(f"edgeecg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except EdgeECGError as err:
        print(f"edgeecg {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"edgeecg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
