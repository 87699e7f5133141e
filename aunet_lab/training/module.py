"""One LightningModule for every architecture: AU-Net (1-4 stages), the BPE baseline, flat bytes."""

from __future__ import annotations

import math
import random

import lightning.pytorch as pl
import torch

from aunet_lab.config import TrainConfig
from aunet_lab.models import AUNet
from aunet_lab.models.build import build_model  # noqa: F401 (re-exported)
from aunet_lab.models.sizing import model_flops
from aunet_lab.training.faults import NonFiniteLoss  # noqa: F401 (raised here, re-exported)
from aunet_lab.training.metrics import BitsPerByte, token_nll


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate: linear warmup, then cosine to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))




class LMModule(pl.LightningModule):
    def __init__(self, config: TrainConfig, max_steps: int, vocab_size: int | None = None,
                 measured: dict | None = None, val_languages: list[str] | None = None,
                 test_languages: list[str] | None = None, window: int = 1024):
        """``measured``: the training stream's compute ratios (``measure_stream``); without them
        (a model built only to score) FLOPs use the paper's default bytes per unit."""
        super().__init__()
        self.config = config
        self.max_steps_total = max_steps
        self.window = window  # the context in the model's units, kept in checkpoints for export
        self.commit: str | None = None  # the code's git commit, set by the runner
        self.model = build_model(config, vocab_size)
        self.is_aunet = isinstance(self.model, AUNet)
        self.inner = torch.compile(self.model) if config.trainer.compile else self.model
        report = model_flops(self.model.config, window, measured)
        self.flops_per_byte = report.total
        self.head_flops_per_byte = report.head
        # What the run counts as its compute (compute/flops_per_byte, compute/flops): the paper's
        # convention leaves the output head out; trainer.count_head_flops counts it.
        self.counted_flops_per_byte = report.total_with_head if config.trainer.count_head_flops else report.total
        self.val_languages = list(val_languages or [])
        self.test_languages = list(test_languages or [])
        self.val_bpb = torch.nn.ModuleDict({lang: BitsPerByte() for lang in self.val_languages})
        self.test_bpb = torch.nn.ModuleDict({lang: BitsPerByte() for lang in self.test_languages})
        self.bytes_seen = 0
        self.tracker = None  # MetricBuffer, attached by the runner
        self.failure: str | None = None
        self._pending: dict[str, float] = {}
        self._recorded_step = 0

    # ------------------------------------------------------------------ forward and loss
    def logits(self, batch: dict) -> torch.Tensor:
        if self.is_aunet:
            return self.inner(batch["input_ids"], batch.get("levels"))
        return self.inner(batch["input_ids"])

    def _record(self, metrics: dict, step: int | None = None, once: bool = False) -> None:
        if self.tracker is not None and self.trainer.is_global_zero:
            self.tracker.log(metrics, self.global_step if step is None else step, once)

    def training_step(self, batch: dict, batch_idx: int):
        logits = self.logits(batch)
        targets = batch["targets"]
        nll = token_nll(logits, targets)
        counted = (targets != -100)
        nbytes = batch["target_bytes"]
        # Sums over every process, so that N processes reproduce one process with the same global
        # batch: each process's loss is its NLL sum over the global target count, times N (DDP
        # averages gradients over processes).
        totals = torch.stack([nll.detach().double().sum(), counted.sum().double(),
                              (nll.detach().double() * (nbytes > 0)).sum(), nbytes.sum().double()])
        world = self.trainer.world_size if self._trainer is not None else 1
        if world > 1:
            totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        global_nll, global_count, global_byte_nll, global_bytes = (float(v) for v in totals)
        loss = nll.sum() * world / max(global_count, 1.0)
        aux = getattr(self.model, "aux_loss", None) if self.is_aunet else None  # learned chunking's ratio loss
        if aux is not None:
            loss = loss + aux
        if not math.isfinite(global_nll):
            self.failure = f"non-finite loss ({global_nll / max(global_count, 1.0)}) at step {self.global_step}"
            raise NonFiniteLoss(self.failure)
        step_bytes = int(global_bytes)
        self.bytes_seen += step_bytes
        metrics = {
            "train/loss": global_nll / max(global_count, 1.0),
            "train/bpb": global_byte_nll / (math.log(2) * max(global_bytes, 1.0)),
            "train/lr": self.optimizers().param_groups[0]["lr"] if self._trainer is not None else 0.0,
            "data/bytes_seen": float(self.bytes_seen),
            "compute/flops": float(self.bytes_seen * self.counted_flops_per_byte),
        }
        if self.is_aunet and self.model.last_stats.get("kept"):
            for k, (kept, dropped) in enumerate(zip(self.model.last_stats["kept"], self.model.last_stats["dropped"]), 2):
                metrics[f"aunet/units_per_byte/stage{k}"] = float(kept) / max(step_bytes, 1)
                metrics[f"aunet/dropped/stage{k}"] = float(dropped)
        if aux is not None:
            metrics["train/ratio_loss"] = float(aux.detach())
        self._pending = metrics
        self.log("loss", metrics["train/loss"], prog_bar=True, logger=False)
        return loss

    def configure_model(self) -> None:
        if self.config.trainer.strategy != "fsdp2" or getattr(self, "_sharded", False):
            return
        from aunet_lab.training.strategy import shard_blocks

        shard_blocks(self.model, self.device_mesh["data_parallel"], self.config.trainer.activation_checkpointing)
        self._sharded = True

    def on_before_optimizer_step(self, optimizer) -> None:
        norms = [p.grad.detach().float().norm() for p in self.parameters() if p.grad is not None]
        if norms:
            total = torch.stack([n.full_tensor() if hasattr(n, "full_tensor") else n for n in norms]).norm()
            self._pending["train/grad_norm"] = float(total)

    def commit_step_metrics(self) -> None:
        """Hand this optimizer step's metrics to the tracker, once per step (after accumulation).
        Step numbers count finished optimizer steps: the first step is logged as step 1."""
        if self._pending and self.global_step > self._recorded_step:
            self._record(self._pending, self.global_step)
            self._recorded_step = self.global_step
            self._pending = {}

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.commit_step_metrics()

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: dict, dataloader_idx: int, metrics, languages) -> None:
        if not languages:
            return
        nll = token_nll(self.logits(batch), batch["targets"])
        metrics[languages[dataloader_idx]].update(nll, batch["target_bytes"], batch.get("history"))

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._eval_step(batch, dataloader_idx, self.val_bpb, self.val_languages)

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        if batch_idx == 0 and dataloader_idx == 0:
            from aunet_lab.training.faults import reach

            reach("test")
        self._eval_step(batch, dataloader_idx, self.test_bpb, self.test_languages)

    def _summarise(self, metrics, prefix: str) -> dict[str, float]:
        out, nll, nbytes = {}, 0.0, 0
        for lang, metric in metrics.items():
            with metric.sync_context(should_sync=self._trainer is not None and self.trainer.world_size > 1):
                # summed over processes
                lang_nll, lang_bytes, history = float(metric.nll), int(metric.nbytes), float(metric.history)
            metric.reset()
            if lang_bytes == 0:
                continue
            out[f"{prefix}/bpb/{lang}"] = lang_nll / (math.log(2) * lang_bytes)
            out[f"{prefix}/bytes/{lang}"] = float(lang_bytes)
            out[f"{prefix}/context_bytes/{lang}"] = history / lang_bytes
            nll += lang_nll
            nbytes += lang_bytes
        per_lang = [v for k, v in out.items() if k.startswith(f"{prefix}/bpb/")]
        if nbytes:
            out[f"{prefix}/bpb"] = nll / (math.log(2) * nbytes)  # micro: all bytes pooled
            out[f"{prefix}/bpb_macro"] = sum(per_lang) / len(per_lang)
        return out

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            for metric in self.val_bpb.values():
                metric.reset()
            return
        results = self._summarise(self.val_bpb, "val")
        self.last_val = results
        if "val/bpb" in results:
            self.log("val_bpb", results["val/bpb"], prog_bar=True, logger=False)
        self._record(results)

    def on_test_epoch_end(self) -> None:
        self.last_test = self._summarise(self.test_bpb, "test")
        self._record(self.last_test, once=True)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        o = self.config.optim
        # Weight decay on every parameter, vectors (norm gains, no_context) included, as lingua's
        # AdamW(model.parameters()). Two groups only so that checkpoints written when vectors were
        # not decayed still load (their saved groups keep their own decay).
        matrices = [p for p in self.parameters() if p.requires_grad and p.dim() >= 2]
        vectors = [p for p in self.parameters() if p.requires_grad and p.dim() < 2]
        optimizer = torch.optim.AdamW([{"params": matrices}, {"params": vectors}], lr=o.lr,
                                      betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
        total = self.max_steps_total  # from max_steps, never estimated_stepping_batches (Lightning #20550)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, o.warmup_steps, total, o.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoint extras
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        checkpoint["aunet_lab"] = {
            "config": _plain(self.config),
            "bytes_seen": self.bytes_seen,
            "window": self.window,
            "commit": self.commit,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]},
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        import numpy as np

        extra = checkpoint.get("aunet_lab", {})
        self.bytes_seen = int(extra.get("bytes_seen", 0))
        self._recorded_step = int(checkpoint.get("global_step", 0))
        rng = extra.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            state = rng["python"]
            random.setstate((state[0], tuple(state[1]), state[2]))
            kind, keys, pos, has_gauss, cached = rng["numpy"]
            np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _plain(config) -> dict:
    import dataclasses

    return dataclasses.asdict(config)
