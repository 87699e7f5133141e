"""`aunet-lab`: the command-line entry point; a user error (bad spec, path, argument) is one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import sys

from aunet_lab.cli.checkpoint import add_export_parser, add_generate_parser, cmd_export, cmd_generate
from aunet_lab.cli.common import EXIT_USER_ERROR, MAX_ERROR_CHARS, Parser, UserError, one_line
from aunet_lab.cli.data import add_data_parser, cmd_data_prepare, cmd_data_stats
from aunet_lab.cli.demo import add_demo_parser, cmd_demo
from aunet_lab.cli.evaluate import add_eval_parser, cmd_eval
from aunet_lab.cli.report import add_report_parser, cmd_report
from aunet_lab.cli.split import add_split_parser, cmd_split_check, cmd_split_list, cmd_split_show
from aunet_lab.cli.sweep import _spec_overrides, add_sweep_parser, cmd_sweep
from aunet_lab.cli.train import add_peak_parser, add_train_parser, cmd_peak, cmd_train
from aunet_lab.cli.ui import add_ui_parser, cmd_ui, training_view_urls

__all__ = ["EXIT_USER_ERROR", "MAX_ERROR_CHARS", "UserError", "_spec_overrides", "build_parser", "cmd_data_prepare",
           "cmd_data_stats", "cmd_demo", "cmd_eval", "cmd_export", "cmd_generate", "cmd_peak", "cmd_report",
           "cmd_split_check", "cmd_split_list", "cmd_split_show", "cmd_sweep", "cmd_train", "cmd_ui", "main",
           "one_line", "training_view_urls"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="aunet-lab", description="Byte-level hierarchical language models (AU-Net) lab.")
    from aunet_lab import __version__

    parser.add_argument("--version", action="version", version=f"aunet-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    # The order here is the order `aunet-lab --help` lists the commands in.
    for add in (add_split_parser, add_data_parser, add_train_parser, add_generate_parser, add_export_parser,
                add_ui_parser, add_peak_parser, add_sweep_parser, add_report_parser, add_eval_parser, add_demo_parser):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UserError as err:
        print(one_line(f"error: {err}"), file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as err:  # a path the system refuses (too long, no permission, disk full): one line
        where = f": {err.filename}" if err.filename else ""
        print(one_line(f"error: {err.strerror or err}{where}"), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
