"""lm-evaluation-harness for AU-Net and the BPE baseline (``pip install aunet_lab[lm-eval]``).

``HarnessLM`` wraps a :class:`aunet_lab.loaded.LoadedModel` as the harness's ``LM``:

- ``loglikelihood``: context and continuation are one document (``BOS + units``), scored with the
  evaluation path's windows; the continuation's log-likelihood sums the units that cover its bytes.
  For AU-Net those are exactly its bytes. For BPE, context and continuation are tokenized together
  and a token that straddles the boundary counts as the continuation's (it covers some of its bytes).
  ``is_greedy``: every one of those units is the model's argmax.
- ``loglikelihood_rolling``: the text as one document, every byte scored once (EOS not counted), the
  same windows and sums as ``aunet-lab eval``, so the harness's ``bits_per_byte`` is that BPB.
- ``generate_until``: greedy (or ``temperature``) continuation of up to ``max_gen_toks`` bytes, cut
  at the first stop string.
"""

from __future__ import annotations

import math

import torch

from aunet_lab.loaded import LoadedModel


def _lm_base():
    try:
        from lm_eval.api.model import LM
    except ImportError as err:  # the optional extra
        raise ImportError("lm-evaluation-harness is not installed: pip install 'aunet_lab[lm-eval]'") from err
    return LM


class HarnessLM(_lm_base()):
    def __init__(self, model: LoadedModel, batch_size: int = 8):
        super().__init__()
        self.model = model
        self.batch_size = batch_size

    @torch.no_grad()
    def _target_logprobs(self, text: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log p of every target of ``BOS + units + EOS``, whether it was the argmax, the UTF-8 byte
        each target's unit ends at), every target scored once with at least half a window of history."""
        from aunet_lab.data.evalset import document_windows

        doc = self.model.documents([text])[0]
        n = doc.ids.numel() - 1
        logp = torch.zeros(n, dtype=torch.float64)
        hit = torch.zeros(n, dtype=torch.bool)
        window = self.model.window
        for start, first in document_windows(n, window):
            length = min(n, window)
            inputs = doc.ids[start:start + length].long()[None]
            targets = doc.ids[start + 1:start + length + 1].long()
            if self.model.arch == "aunet":
                logits = self.model.module(inputs, doc.levels[start:start + length].long()[None])
            else:
                logits = self.model.module(inputs)
            lp = torch.log_softmax(logits[0].float(), -1)[first:]
            scored = targets[first:]
            logp[start + first:start + length] = lp.gather(-1, scored[:, None])[:, 0].double()
            hit[start + first:start + length] = lp.argmax(-1) == scored
        ends = torch.cumsum(doc.nbytes.long(), 0)[1:]  # byte end of the unit each target predicts
        return logp, hit, ends

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for request in requests:
            context, continuation = request.args
            logp, hit, ends = self._target_logprobs(context + continuation)
            start = len(context.encode("utf-8"))
            mine = ends > start
            mine[-1] = False  # EOS
            out.append((float(logp[mine].sum()), bool(hit[mine].all())))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        return [-self.model.score([request.args[0]], self.batch_size)[0] for request in requests]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for request in requests:
            context, kwargs = request.args
            kwargs = dict(kwargs or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            text = self.model.generate(context, int(kwargs.get("max_gen_toks", 256)),
                                       float(kwargs.get("temperature", 0.0) or 0.0))
            cut = min((text.find(s) for s in until if s and s in text), default=len(text))
            out.append(text[:cut])
        return out


def run_tasks(model: LoadedModel, tasks: list[str], include_path: str | None = None, limit: float | None = None,
              batch_size: int = 8) -> dict:
    """The harness's results (``simple_evaluate``) for ``tasks`` on ``model``."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path) if include_path else TaskManager()
    return simple_evaluate(model=HarnessLM(model, batch_size), tasks=tasks, task_manager=manager, limit=limit,
                           log_samples=False, bootstrap_iters=0)


def scores(results: dict) -> dict[str, float]:
    """Flat ``lm_eval/<task>/<metric>`` numbers from a results dict (for MLflow)."""
    flat = {}
    for task, metrics in results.get("results", {}).items():
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                flat[f"lm_eval/{task}/{key.replace(',', '_')}"] = float(value)
    return flat
