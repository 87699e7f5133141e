"""Cached, incremental generation for AU-Net and the token baseline.

AU-Net: the byte stage runs at every step; stage i+1 runs only when the new byte closes a unit of
that stage (its level, from the split function on the document so far, is >= i); every stack
(encoder, trunk, decoder) keeps its own KV cache, and every stage keeps its latest output, the
coarse vector the finer stage reads until the next boundary. The stage modules are the model's own:
this file holds only the bookkeeping.

Rows of a batch keep separate state (their stages fire at different bytes); the work per step is
one byte per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aunet_lab.data.splitting import LevelStream
from aunet_lab.models.aunet import BOS_ID, AUNet
from aunet_lab.models.baseline import TokenTransformer
from aunet_lab.models.blocks import KVCache


@dataclass
class _AUNetRow:
    caches: list[list[KVCache]]
    levels: LevelStream  # the split function over the current document (since the last BOS)
    lengths: list[int]  # elements so far in every stage's sequence
    boundary: list[int]  # per coarse stage j >= 1: position in stage j-1 of its latest kept boundary
    latest: list[torch.Tensor | None]  # per stage: output at its newest element ([1, 1, dim])
    dropped: list[int] = field(default_factory=list)


def sample_next(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Greedy when ``temperature == 0``; otherwise temperature and nucleus (top-p) sampling. [B, V] -> [B]."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs / probs.sum(-1, keepdim=True), 1, generator=generator).squeeze(-1)


class Generator:
    """``prefill(prompt_ids)`` then ``step(next_ids)``; both return next-id logits [B, vocab].

    ``stage_calls[i]`` counts the elements stage i has processed (prefill included): for AU-Net,
    the bytes whose level reaches stage i, so the deep stages run only at their boundaries.
    """

    def __init__(self, model: AUNet | TokenTransformer):
        self.model = model
        self.is_aunet = isinstance(model, AUNet)
        n = model.n_stages if self.is_aunet else 1
        self.stage_calls = [0] * n
        self.rows: list = []

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def prefill(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        if prompt_ids.dim() != 2 or prompt_ids.shape[1] == 0:
            raise ValueError("prompt_ids must be a non-empty [B, T] tensor")
        prompt_ids = prompt_ids.to(self.device)
        self.stage_calls = [0] * len(self.stage_calls)
        self.rows = []
        out = []
        for row in prompt_ids:
            row = row.unsqueeze(0)
            if self.is_aunet:
                out.append(self._prefill_aunet(row))
            else:
                caches = self.model.new_caches()
                out.append(self.model(row, caches)[:, -1])
                self.rows.append(caches)
                self.stage_calls[0] += row.shape[1]
        return torch.cat(out, 0)

    @torch.no_grad()
    def step(self, next_ids: torch.Tensor) -> torch.Tensor:
        if not self.rows:
            raise RuntimeError("call prefill() before step()")
        next_ids = next_ids.reshape(-1).to(self.device)
        if next_ids.numel() != len(self.rows):
            raise ValueError(f"step() needs one id per row ({len(self.rows)}), got {next_ids.numel()}")
        out = []
        for r, tok in enumerate(next_ids.tolist()):
            if self.is_aunet:
                out.append(self._step_aunet(self.rows[r], tok))
            else:
                ids = torch.tensor([[tok]], device=self.device)
                out.append(self.model(ids, self.rows[r])[:, -1])
                self.stage_calls[0] += 1
        return torch.cat(out, 0)

    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, max_new: int, temperature: float = 0.0, top_p: float = 1.0,
                 stop_id: int | None = None, seed: int | None = None) -> torch.Tensor:
        """Ids generated after the prompt, [B, <= max_new]; a row that emits ``stop_id`` keeps emitting it."""
        gen = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        logits = self.prefill(prompt_ids)
        produced = []
        done = torch.zeros(prompt_ids.shape[0], dtype=torch.bool, device=self.device)
        for _ in range(max_new):
            nxt = sample_next(logits, temperature, top_p, gen)
            if stop_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, stop_id), nxt)
                done |= nxt == stop_id
            produced.append(nxt)
            if stop_id is not None and bool(done.all()):
                break
            logits = self.step(nxt)
        return torch.stack(produced, 1) if produced else prompt_ids[:, :0]

    # ------------------------------------------------------------------ AU-Net internals

    def _prefill_aunet(self, row: torch.Tensor) -> torch.Tensor:
        model: AUNet = self.model
        n = model.n_stages
        caches = model.new_caches()
        logits, trace = model.run(row, caches=caches)
        ids = row[0].tolist()
        last_bos = max((i for i, t in enumerate(ids) if t == BOS_ID), default=-1)
        levels = model.split.level_stream()
        levels.feed(bytes(t for t in ids[last_bos + 1:] if t < 256))
        lengths = [row.shape[1]] + [int(m.kept[0]) for m in trace.maps]
        # Padding a batched forward appended to coarse sequences must not stay in the caches.
        for j in range(1, n):
            stacks = [j] if j == n - 1 else [j, n + j]
            for s in stacks:
                for cache in caches[s]:
                    cache.truncate(lengths[j])
        boundary = [-1] + [int(m.idx[0, lengths[j + 1] - 1]) if lengths[j + 1] else -1
                           for j, m in enumerate(trace.maps)]
        latest = [None] * n
        for j in range(1, n):
            if lengths[j]:
                latest[j] = trace.stage_outputs[j][:, lengths[j] - 1 : lengths[j]]
        state = _AUNetRow(caches, levels, lengths, boundary, latest, [int(m.dropped[0]) for m in trace.maps])
        self.rows.append(state)
        for j in range(n):
            self.stage_calls[j] += lengths[j]
        return logits[:, -1]

    def _level_of(self, state: _AUNetRow, tok: int) -> int:
        model: AUNet = self.model
        if tok >= 256:
            if tok == BOS_ID:
                state.levels = model.split.level_stream()
            return model.split.max_level
        # Stability: the new byte's level depends only on the document so far.
        return state.levels.push(tok)

    def _step_aunet(self, state: _AUNetRow, tok: int) -> torch.Tensor:
        model: AUNet = self.model
        n = model.n_stages
        level = min(self._level_of(state, tok), n - 1)
        x = model.tok_embeddings(torch.tensor([[tok]], device=self.device))
        skips = []
        reached = 0  # deepest stage this byte reaches
        for i in range(n):
            state.lengths[i] += 1
            self.stage_calls[i] += 1
            if i == n - 1:
                break
            x = model.encoders[i](x, state.caches[i])
            skips.append(x)
            cap = model.config.stages[i + 1].max_len
            if level < i + 1:
                break
            if cap is not None and state.lengths[i + 1] >= cap:
                state.dropped[i] += 1
                break
            state.boundary[i + 1] = state.lengths[i] - 1
            x = model.pooling[i](x, torch.zeros(1, 1, dtype=torch.long, device=self.device))
            reached = i + 1
        if reached == n - 1:
            x = model.trunk(x, state.caches[n - 1])
            state.latest[n - 1] = x
        for i in reversed(range(min(reached, n - 2) + 1)):
            coarse = state.latest[i + 1]
            if coarse is None:  # no boundary yet in this document window: the learned vector
                src = torch.full((1, 1), -1, dtype=torch.long, device=self.device)
                coarse = torch.zeros(1, 1, model.config.stages[i + 1].dim, device=self.device)
                offset = torch.zeros(1, 1, dtype=torch.long, device=self.device)
            else:
                src = torch.zeros(1, 1, dtype=torch.long, device=self.device)
                offset = torch.tensor([[state.lengths[i] - 1 - state.boundary[i + 1]]], device=self.device)
            up = model.upsampling[i](coarse, src, offset)
            x = skips[i] + up if model.config.skip else up
            x = model.decoders[i](x, state.caches[n + i])
            state.latest[i] = x
        return model.output(model.norm(x))[:, -1]
