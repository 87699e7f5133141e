"""Training callbacks: throughput and MFU from the analytic FLOPs per byte, and the peak to divide by."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch


def measure_peak_flops(dtype: torch.dtype = torch.float32, device: str = "cpu", max_size: int = 4096,
                       repeats: int = 3) -> dict:
    """Best achieved FLOP/s of square matmuls (sizes 256 ... ``max_size``) in ``dtype`` on ``device``:
    the peak that MFU divides by. Returns ``{"flops": best, "size": n, "dtype": ..., "device": ...}``."""
    best, best_n = 0.0, 0
    n = 256
    while n <= max_size:
        a = torch.randn(n, n, dtype=dtype, device=device)
        b = torch.randn(n, n, dtype=dtype, device=device)
        torch.mm(a, b)  # warm-up
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            torch.mm(a, b)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            flops = 2 * n**3 / max(elapsed, 1e-12)
            if flops > best:
                best, best_n = flops, n
        n *= 2
    return {"flops": best, "size": best_n, "dtype": str(dtype).replace("torch.", ""), "device": device,
            "threads": torch.get_num_threads()}


def peak_file(cache: Path) -> Path:
    return Path(cache) / "peak_flops.json"


def load_peak(cache: Path, dtype: str, device: str) -> float | None:
    path = peak_file(cache)
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text()).get(f"{device}:{dtype}")
    except (ValueError, AttributeError, OSError):
        entry = {}
    if entry is None:  # not measured for this device and dtype
        return None
    flops = entry.get("flops") if isinstance(entry, dict) else None
    if not (isinstance(flops, (int, float)) and flops > 0):
        print(f"warning: the {device}:{dtype} peak in {path} is not usable (MFU not logged; run: aunet-lab peak)",
              file=sys.stderr)
        return None
    return flops


def save_peak(cache: Path, result: dict) -> None:
    path = peak_file(cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = json.loads(path.read_text()) if path.is_file() else {}
    entries[f"{result['device']}:{result['dtype']}"] = result
    path.write_text(json.dumps(entries, indent=1))


class Throughput(pl.Callback):
    """Per optimizer step: bytes/s and tokens/s (inputs per second), achieved FLOP/s from the analytic
    FLOPs per byte (head included: it is work the hardware does), and MFU against ``peak_flops`` per
    device. The interval runs from one step's end to the next, so data loading counts; the first
    step (start-up) is not reported. Counts are global (times the number of processes)."""

    def __init__(self, peak_flops: float | None = None, clock=time.perf_counter):
        self.peak_flops = peak_flops
        self.clock = clock
        self.last_end: float | None = None
        self.last_step = 0
        self.bytes = 0
        self.tokens = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.bytes += int(batch["target_bytes"].sum())
        self.tokens += int(batch["input_ids"].numel())
        if trainer.global_step == self.last_step:
            return  # still accumulating gradients
        now = self.clock()
        world = max(1, trainer.world_size)
        if self.last_end is not None and now > self.last_end:
            elapsed = now - self.last_end
            bytes_per_s = self.bytes * world / elapsed
            flops = bytes_per_s * (pl_module.flops_per_byte + pl_module.head_flops_per_byte)
            metrics = {"throughput/bytes_per_s": bytes_per_s, "throughput/tokens_per_s": self.tokens * world / elapsed,
                       "throughput/flops_per_s": flops}
            if self.peak_flops:
                metrics["throughput/mfu"] = flops / (self.peak_flops * world)
            pl_module._pending.update(metrics)
        self.last_end, self.last_step = now, trainer.global_step
        self.bytes = self.tokens = 0


class ProgressLines(pl.Callback):
    """One plain line per validation (step, bytes seen, train loss, validation BPB) and at the end,
    for output that is not a terminal: a sweep trial's ``log.txt``, a batch job's log."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.start = time.monotonic()

    def _say(self, text: str, trainer=None) -> None:
        if trainer is not None and not trainer.is_global_zero:
            return
        print(f"[{time.monotonic() - self.start:7.0f}s] {text}", file=self.stream, flush=True)

    def on_train_start(self, trainer, module) -> None:
        self._say(f"training {trainer.max_steps} steps, {sum(p.numel() for p in module.parameters()):,} parameters",
                  trainer)

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        loss = trainer.callback_metrics.get("loss")
        val = getattr(module, "last_val", {}).get("val/bpb")
        parts = [f"step {trainer.global_step}/{trainer.max_steps}", f"bytes {module.bytes_seen:,}"]
        if loss is not None:
            parts.append(f"train loss {float(loss):.4f}")
        if val is not None:
            parts.append(f"val bpb {val:.4f}")
        self._say(", ".join(parts), trainer)

    def on_train_end(self, trainer, module) -> None:
        self._say(f"finished at step {trainer.global_step}, bytes {module.bytes_seen:,}", trainer)


class ProgressFile(pl.Callback):
    """The run's progress as a small JSON file, rewritten every ``every_s`` seconds and at each
    validation: step, bytes seen, last train loss and validation BPB. A sweep's live display reads
    its running trials' files (the trial runs in another process)."""

    def __init__(self, path: Path, every_s: float = 2.0):
        self.path = Path(path)
        self.every_s = every_s
        self.last = 0.0
        self.val: float | None = None

    def _write(self, trainer, module, state: str = "training") -> None:
        if not trainer.is_global_zero:
            return
        loss = trainer.callback_metrics.get("loss")
        record = {"state": state, "step": trainer.global_step, "max_steps": trainer.max_steps,
                  "bytes": int(module.bytes_seen), "train_loss": float(loss) if loss is not None else None,
                  "val_bpb": self.val, "time": time.time()}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.path)
        self.last = time.monotonic()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if time.monotonic() - self.last >= self.every_s:
            self._write(trainer, module)

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking:
            return
        self.val = getattr(module, "last_val", {}).get("val/bpb", self.val)
        self._write(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        self._write(trainer, module, "finished")


def read_progress(path: Path) -> dict | None:
    """A ProgressFile's record, or None if it is not there (yet) or cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
