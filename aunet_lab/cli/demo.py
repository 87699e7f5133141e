"""`aunet-lab demo`: the split functions, then the smoke study, on the embedded default data."""

from __future__ import annotations

from aunet_lab.cli.common import UserError


def cmd_demo(args) -> int:
    from aunet_lab.config import ConfigError
    from aunet_lab.demo import run_demo

    for name in ("workers", "trials"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name}: expected at least 1, got {value}")
    try:
        return run_demo(offline=args.offline, workers=args.workers, trials=args.trials, quick=args.quick)
    except ConfigError as err:
        raise UserError(str(err)) from None


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded default data: split functions, then the smoke study")
    p.add_argument("--offline", action="store_true", help="run the smoke study on the UDHR embedded in the package")
    p.add_argument("--workers", type=int, help="trials at once (default: 2, or 1 on a one-core machine)")
    p.add_argument("--trials", type=int, help="learning-rate trials per cell (default: the spec's 2)")
    p.add_argument("--quick", action="store_true", help="one budget and one mixture (2 cells): a check that it all runs")
    p.set_defaults(func=cmd_demo)
