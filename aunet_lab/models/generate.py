"""Cached, incremental generation for AU-Net and the token baseline.

AU-Net: the byte stage runs at every step; stage i+1 runs only when the new byte closes a unit of
that stage (its level, from the split function on the document so far, is >= i); every stack
(encoder, trunk, decoder) keeps its own KV cache, and every stage keeps its latest output, the
coarse vector the finer stage reads until the next boundary. The stage modules are the model's own:
this file holds only the bookkeeping.

Rows of a batch step together where they can: every row takes one byte per step, so the byte
stage (and the whole token baseline) runs once for the batch on shared KV caches; the deeper stages
fire at different bytes in different rows, so each row keeps its own caches and state for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aunet_lab.data.splitting import LevelStream
from aunet_lab.data.byte_ids import BOS_ID
from aunet_lab.models.aunet import AUNet
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
    # learned chunking: per stage, the encoder output of its newest element (what routing compares
    # the next one with), and the last 3 ids (whether a byte ends a character)
    prev: list[torch.Tensor | None] = field(default_factory=list)
    tail: list[int] = field(default_factory=list)


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
        self.byte_caches: list[list[KVCache]] = []  # the byte stage's stacks (or the baseline's), all rows

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
        if not self.is_aunet:
            caches = self.model.new_caches()
            logits = self.model(prompt_ids, caches)[:, -1]
            self.rows = [None] * prompt_ids.shape[0]
            self.byte_caches = [caches]
            self.stage_calls[0] += prompt_ids.numel()
            return logits
        # Row by row (their coarse sequences differ in length), then the byte stage's caches joined.
        out = torch.cat([self._prefill_aunet(row.unsqueeze(0)) for row in prompt_ids], 0)
        n = self.model.n_stages
        stacks = [0] if n == 1 else [0, n]
        self.byte_caches = [_joined([r.caches[s] for r in self.rows]) for s in stacks]
        for r in self.rows:
            for s in stacks:
                r.caches[s] = []  # now in byte_caches
        return out

    @torch.no_grad()
    def step(self, next_ids: torch.Tensor) -> torch.Tensor:
        if not self.rows:
            raise RuntimeError("call prefill() before step()")
        next_ids = next_ids.reshape(-1).to(self.device)
        if next_ids.numel() != len(self.rows):
            raise ValueError(f"step() needs one id per row ({len(self.rows)}), got {next_ids.numel()}")
        if not self.is_aunet:
            self.stage_calls[0] += next_ids.numel()
            return self.model(next_ids.view(-1, 1), self.byte_caches[0])[:, -1]
        return self._step_aunet(next_ids)

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
        levels = None
        if not model.config.learned:
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
        if model.config.learned:
            state.prev = [trace.encoder_outputs[j][:, lengths[j] - 1] if lengths[j] else None for j in range(n - 1)]
            state.tail = ids[-3:]
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

    def _step_aunet(self, next_ids: torch.Tensor) -> torch.Tensor:
        """One byte for every row: the byte stage batched, each row's deeper stages on their own."""
        model: AUNet = self.model
        n = model.n_stages
        x = model.tok_embeddings(next_ids.view(-1, 1))
        self.stage_calls[0] += len(self.rows)
        if n == 1:
            return model.output(model.norm(model.trunk(x, self.byte_caches[0])))[:, -1]
        x = model.encoders[0](x, self.byte_caches[0])
        for r, (state, tok) in enumerate(zip(self.rows, next_ids.tolist())):
            state.lengths[0] += 1
            if model.config.learned:
                self._deeper_stages(state, 0, x[r : r + 1], tok)
            else:
                self._deeper_stages(state, min(self._level_of(state, tok), n - 1), x[r : r + 1])
        coarse, src, offset = [], [], []
        for state in self.rows:
            latest = state.latest[1]
            coarse.append(latest if latest is not None else x.new_zeros(1, 1, model.config.stages[1].dim))
            src.append(0 if latest is not None else -1)  # -1: no boundary yet, the learned vector
            offset.append(state.lengths[0] - 1 - state.boundary[1] if latest is not None else 0)
        up = model.upsampling[0](torch.cat(coarse, 0), torch.tensor(src, device=self.device).view(-1, 1),
                                 torch.tensor(offset, device=self.device).view(-1, 1))
        x = x + up if model.config.skip else up
        x = model.decoders[0](x, self.byte_caches[1])
        return model.output(model.norm(x))[:, -1]

    def _closes(self, state: _AUNetRow, i: int, x: torch.Tensor, tok: int) -> torch.Tensor | None:
        """Learned chunking: the boundary probability of stage i's new element ``x`` (None: not a
        boundary), by the rules of the full pass (models/chunking.py)."""
        from aunet_lab.models.chunking import boundaries, char_end_mask

        model: AUNet = self.model
        prev = state.prev[i]
        state.prev[i] = x[:, -1]
        one = torch.ones(1, 1, dtype=torch.bool, device=self.device)
        p = model.routing[i].pair(prev, x[:, -1]).view(1, 1) if prev is not None else x.new_ones(1, 1)
        allowed = one
        if i == 0:
            ids = torch.tensor([state.tail + [tok]], device=self.device)
            allowed = char_end_mask(ids)[:, -1:]
            state.tail = (state.tail + [tok])[-3:]
        p, b = boundaries(p, one & (tok >= 256), allowed, one)
        return p if bool(b) else None

    def _deeper_stages(self, state: _AUNetRow, level: int, x: torch.Tensor, tok: int | None = None) -> None:
        """Stages 2.. of one row for a byte of level ``level`` whose byte-stage encoder output is
        ``x``: pooled into every stage it closes a unit of, each of those runs its encoder (the
        deepest its trunk), then their decoders run back down to stage 2, whose output the byte
        stage reads from then on. With learned chunking (``tok`` given) the routing of each stage
        decides instead, and each new coarse output is smoothed with the stage's previous one."""
        model: AUNet = self.model
        n = model.n_stages
        zero = torch.zeros(1, 1, dtype=torch.long, device=self.device)
        skips = [x]
        probs = []  # learned: the probability of each new coarse element (stage i + 2 at index i)
        reached = 0  # deepest stage this byte reaches
        for i in range(n - 1):
            if i:
                x = model.encoders[i](x, state.caches[i])
                skips.append(x)
            cap = model.config.stages[i + 1].max_len
            if tok is not None:
                p = self._closes(state, i, x, tok)
                if p is None:
                    break
                probs.append(p)
            elif level < i + 1:
                break
            if cap is not None and state.lengths[i + 1] >= cap:
                state.dropped[i] += 1
                break
            state.boundary[i + 1] = state.lengths[i] - 1
            x = model.pooling[i](x, zero)
            reached = i + 1
            state.lengths[i + 1] += 1
            self.stage_calls[i + 1] += 1
        if reached == n - 1:
            x = model.trunk(x, state.caches[n - 1])
            state.latest[n - 1] = x if tok is None else _smoothed(x, probs[n - 2], state.latest[n - 1])
        for i in reversed(range(1, min(reached, n - 2) + 1)):
            coarse = state.latest[i + 1]
            if coarse is None:
                src, offset = torch.full((1, 1), -1, dtype=torch.long, device=self.device), zero
                coarse = torch.zeros(1, 1, model.config.stages[i + 1].dim, device=self.device)
            else:
                src = zero
                offset = torch.tensor([[state.lengths[i] - 1 - state.boundary[i + 1]]], device=self.device)
            up = model.upsampling[i](coarse, src, offset)
            x = skips[i] + up if model.config.skip else up
            x = model.decoders[i](x, state.caches[n + i])
            state.latest[i] = x if tok is None else _smoothed(x, probs[i - 1], state.latest[i])


def _smoothed(z: torch.Tensor, p: torch.Tensor, before: torch.Tensor | None) -> torch.Tensor:
    """One step of the learned-chunking smoothing (models/chunking.smooth)."""
    w = p.view(1, 1, 1).to(z.dtype)
    return w * z + (1 - w) * (before if before is not None else torch.zeros_like(z))


def _joined(per_row: list[list[KVCache]]) -> list[KVCache]:
    """One stack's caches of several rows (each of batch 1, all the same length) as batch caches."""
    joined = []
    for layer in zip(*per_row):
        cache = KVCache()
        cache.append(torch.cat([c.k for c in layer], 0), torch.cat([c.v for c in layer], 0))
        joined.append(cache)
    return joined
