"""`aunet-lab train` and `peak`: one training run, and the machine's peak FLOP/s its MFU is measured against."""

from __future__ import annotations

import sys
from pathlib import Path

from aunet_lab.cli.common import UserError, check_option


def cmd_train(args) -> int:
    from aunet_lab.config import ConfigError, load_config
    from aunet_lab.data.corpus import CorpusError
    from aunet_lab.data.dataconfig import DataConfigError
    from aunet_lab.data.manifest import ManifestError
    from aunet_lab.models.aunet import ConfigError as ModelConfigError
    from aunet_lab.training.faults import Interrupted, NonFiniteLoss
    from aunet_lab.mlflow_client import TrackingError
    from aunet_lab.training.checkpoint import CheckpointError
    from aunet_lab.training.run import train

    try:
        config = load_config(args.config, overrides=args.set)
        if args.tracking_uri:
            config.tracking.tracking_uri = args.tracking_uri
        if args.output_dir:
            config.output_dir = args.output_dir
        if args.check:
            from aunet_lab.training.check import check_training

            print(check_training(config, resume=args.resume, init_from=args.init_from))
            return 0
        result = train(config, resume=args.resume, init_from=args.init_from)
    except (ConfigError, ModelConfigError, DataConfigError, ManifestError, CorpusError, CheckpointError,
            TrackingError) as err:
        raise UserError(str(err)) from None
    except NonFiniteLoss as err:
        print(f"error: training stopped: {err} (recorded on the MLflow run as aunet.failure)", file=sys.stderr)
        return 1
    except Interrupted as err:
        run = f"; MLflow run {err.run_id} is KILLED" if err.run_id else " before its MLflow run was created"
        print(f"{err.describe()}{run}; continue with: aunet-lab train {args.config} --resume", file=sys.stderr)
        return err.exit_code
    if result.final_loss is None:  # a second process of a multi-process run: the first one reports
        return 0
    summary = ", ".join(f"{k} {v:.4f}" for k, v in {**result.val, **result.test}.items() if k.count("/") == 1)
    print(f"run {result.run_id} ({result.run_dir}): {result.steps} steps, final loss {result.final_loss:.4f}; {summary}")
    return 0


def cmd_peak(args) -> int:
    import torch

    from aunet_lab.data.corpus import default_cache
    from aunet_lab.training.callbacks import measure_peak_flops, save_peak

    check_option(args.max_size >= 64, "--max-size", "a matrix side of at least 64", args.max_size)
    check_option(args.repeats >= 1, "--repeats", "at least 1", args.repeats)
    check_option(args.device in (None, "cpu") or str(args.device).startswith("cuda"), "--device", "cpu or cuda",
                 repr(args.device))
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = measure_peak_flops(dtype, device, args.max_size, args.repeats)
    cache = args.cache or default_cache()
    save_peak(cache, result)
    print(f"peak {result['flops'] / 1e9:.1f} GFLOP/s ({args.dtype} matmul {result['size']}x{result['size']} on "
          f"{device}, {result['threads']} threads); saved to {cache}/peak_flops.json for MFU")
    return 0


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train one model from a YAML config, tracked in MLflow")
    p.add_argument("config", help="config YAML (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a config value")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint, same MLflow run")
    p.add_argument("--init-from", metavar="CHECKPOINT", help="warm start: weights only (new optimizer, schedule, data)")
    p.add_argument("--tracking-uri", help="MLflow store (default sqlite:///./mlruns/mlflow.db or $MLFLOW_TRACKING_URI)")
    p.add_argument("--output-dir", help="where run folders (checkpoints) go (default: the config's output_dir)")
    p.add_argument("--check", action="store_true", help="validate the config, corpus, store and folders and print "
                   "what would train; create no run, train no tokenizer")
    p.set_defaults(func=cmd_train)


def add_peak_parser(sub) -> None:
    p = sub.add_parser("peak", help="measure this machine's peak matmul FLOP/s once, for MFU")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="matmul precision (default float32, what CPU training uses)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--max-size", type=int, default=4096, help="largest square matmul in the sweep")
    p.add_argument("--repeats", type=int, default=3, help="timed matmuls per size; the best counts")
    p.add_argument("--cache", type=Path, help="where the result is kept (default $AUNET_LAB_CACHE or ~/.cache/aunet_lab)")
    p.set_defaults(func=cmd_peak)
