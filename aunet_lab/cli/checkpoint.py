"""`aunet-lab generate` and `export`: text from a trained checkpoint, or the checkpoint as files."""

from __future__ import annotations

from aunet_lab.cli.common import UserError, check_option


def cmd_generate(args) -> int:
    import math

    from aunet_lab.training.checkpoint import CheckpointError, generate_from_checkpoint

    check_option(args.max_new >= 1, "--max-new", "at least 1 byte", args.max_new)
    check_option(math.isfinite(args.temperature) and args.temperature >= 0, "--temperature",
                 "a number >= 0 (0: greedy)", args.temperature)
    check_option(math.isfinite(args.top_p) and 0 < args.top_p <= 1, "--top-p", "a number in (0, 1]", args.top_p)
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 reach argv as lone surrogates
        raise UserError("--prompt: not valid UTF-8 text") from None

    try:
        text = generate_from_checkpoint(args.checkpoint, args.prompt, args.max_new, args.temperature, args.top_p,
                                        args.seed)
    except CheckpointError as err:
        raise UserError(str(err)) from None
    print(args.prompt + text)
    return 0


def cmd_export(args) -> int:
    from aunet_lab.export import ExportError, export_checkpoint
    from aunet_lab.loaded import LoadError
    from aunet_lab.training.checkpoint import CheckpointError

    try:
        out = export_checkpoint(args.checkpoint, args.out)
    except (ExportError, LoadError, CheckpointError) as err:
        raise UserError(str(err)) from None
    print(f"exported {args.checkpoint} to {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    return 0


def add_generate_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate text from a checkpoint")
    p.add_argument("checkpoint", help="a checkpoint aunet-lab train wrote (e.g. runs/NAME/final.ckpt)")
    p.add_argument("--prompt", required=True, help="the text to continue (UTF-8)")
    p.add_argument("--max-new", type=int, default=200, help="bytes (AU-Net) or tokens (BPE) to generate")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the most likely units "
                   "whose probabilities sum to this (1.0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling")
    p.set_defaults(func=cmd_generate)


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="a checkpoint as model.safetensors, config.json, tokenizer and model card")
    p.add_argument("checkpoint", help="a checkpoint aunet-lab train wrote, or its run folder (final.ckpt)")
    p.add_argument("out", help="the export folder to create (refused if it exists and is not empty)")
    p.set_defaults(func=cmd_export)
