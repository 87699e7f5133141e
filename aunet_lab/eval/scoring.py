"""Scoring a model on character tasks, AU-Net and BPE alike: the log-likelihood of each candidate
answer after the prompt (ranked; accuracy against chance with 95% Wilson intervals per language and task, none below 10 items)
and exact match of greedy generation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from aunet_lab.eval.chars import Item


class Scorer:
    """``model`` in eval mode; ``tokenizer`` for the BPE baseline, None for AU-Net (bytes)."""

    def __init__(self, model, tokenizer=None):
        self.model = model
        self.tok = tokenizer

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text) if self.tok is not None else list(text.encode("utf-8"))

    @property
    def bos(self) -> int:
        return self.tok.bos_id if self.tok is not None else 256

    @torch.no_grad()
    def sequence_logprob(self, ids: list[int]) -> torch.Tensor:
        """log p of every id after the first, given the ones before it: [len(ids) - 1]."""
        x = torch.tensor([ids])
        logits = self.model(x[:, :-1])
        return F.log_softmax(logits.float(), -1)[0].gather(-1, x[0, 1:, None])[:, 0]

    def logprob(self, prompt: str, answer: str) -> float:
        """Sum of log p over the answer's ids after BOS and the prompt (prompt and answer encoded
        separately, so every candidate is scored on the same prompt ids)."""
        head = [self.bos] + self.encode(prompt)
        tail = self.encode(answer)
        return float(self.sequence_logprob(head + tail)[len(head) - 1:].sum())

    @torch.no_grad()
    def greedy(self, prompt: str, answer_len_bytes: int) -> str:
        from aunet_lab.models.generate import Generator

        ids = torch.tensor([[self.bos] + self.encode(prompt)])
        if self.tok is None:
            out = Generator(self.model).generate(ids, answer_len_bytes, 0.0, 1.0, 257, 0)
            return bytes(t for t in out[0, ids.shape[1]:].tolist() if t < 256).decode("utf-8", "replace")
        new = max(1, answer_len_bytes)  # a token covers at least one byte
        out = Generator(self.model).generate(ids, new, 0.0, 1.0, self.tok.eos_id, 0)
        return self.tok.decode_bytes(out[0, ids.shape[1]:].tolist()).decode("utf-8", "replace")


def score_items(scorer: Scorer, items: list[Item], greedy: bool = True) -> list[dict]:
    rows = []
    for it in items:
        scores = [scorer.logprob(it.prompt, c) for c in it.candidates]
        row = {"language": it.language, "task": it.task, "correct": int(np.argmax(scores) == 0),
               "chance": 1.0 / len(it.candidates), "answer_logprob": scores[0]}
        if greedy:
            row["exact"] = int(scorer.greedy(it.prompt, len(it.answer.encode())).startswith(it.answer))
        rows.append(row)
    return rows


def summarise(rows: list[dict]):
    """Accuracy per (language, task) with its 95% Wilson interval over items (none below
    ``intervals.MIN_ITEMS`` items), against chance."""
    import pandas as pd

    from aunet_lab.intervals import above_chance, accuracy_interval

    frame = pd.DataFrame(rows)
    out = []
    for (lang, task), group in frame.groupby(["language", "task"], sort=True):
        correct = group["correct"].to_numpy(int)
        accuracy, low, high = accuracy_interval(int(correct.sum()), len(correct))
        row = {"language": lang, "task": task, "items": len(correct), "accuracy": accuracy,
               "ci_low": low, "ci_high": high, "chance": group["chance"].mean()}
        if "exact" in group:
            row["exact_match"] = group["exact"].mean()
        row["above_chance"] = above_chance(low, row["chance"])
        out.append(row)
    return pd.DataFrame(out)
