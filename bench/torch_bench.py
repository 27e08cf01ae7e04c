#!/usr/bin/env python3
"""PyTorch twin of `kto_lab::bench` (src/bench.rs): lab 3's model, batch and steps, eager or compiled.

Same architecture as src/model/ (VOCAB 512, D_MODEL 128, N_HEADS 4, N_LAYERS 2, MAX_SEQ 64,
D_FF 512): token + position embeddings, pre-LayerNorm blocks (separate q/k/v Linears, causal
softmax attention, output projection; Linear -> tanh-GELU -> Linear), final LayerNorm, LM head
tied to the token embedding. LayerNorm eps 1e-5 as dfdx's LayerNorm1D.

Same steps as the Rust trainers:
  SFT: masked NLL over completion tokens (mean), backward, clip global norm to 1, AdamW.
  KTO: policy sequence log-probs with grad; policy and frozen reference log-probs of the
       mismatched pairs (prompt i, completion i+1) under no_grad; reference log-probs of the
       matched pairs precomputed once; KTO loss (z0 = max(0, mean KL log-ratio), detached);
       backward, clip, AdamW.
AdamW: betas (0.9, 0.95), eps 1e-8, weight decay 0.01 on matrices only, lr 1e-3.

The same work as the dfdx side, with PyTorch's best ordinary tools for it:
  - the tied LM head (and log-softmax) only at the completion positions that are scored, as the
    dfdx model does (not B x S x VOCAB logits);
  - attention by F.scaled_dot_product_attention(is_causal=True), no mask tensor;
  - AdamW(fused=True): one kernel for every parameter;
  - the rows are tensors built once; a step's batch and its mismatched pairs are indexing.
  --compile adds torch.compile (inductor) on the models; its compilation falls in the warmup.

Synthetic data as in src/bench.rs: row i = prompt of `prompt_len` ids + completion of
`completion_len - 2 + i % 5` ids, right-padded with id 0; labels alternate up/down. Each step
reshuffles the rows (as the Rust sampler does) and rebuilds the mismatched pairs.

Prints one JSON object in the shape of `kto_lab::bench::BenchReport`.
Usage: python3 bench/torch_bench.py [--batch 32 --prompt-len 12 --completion-len 8 ...]
"""

import argparse
import json
import math
import os
import random
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, D_MODEL, N_HEADS, N_LAYERS, MAX_SEQ, D_FF = 512, 128, 4, 2, 64, 512
MASK_VALUE = -1e9
PAD_ID = 0


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(D_MODEL, D_MODEL)
        self.k = nn.Linear(D_MODEL, D_MODEL)
        self.v = nn.Linear(D_MODEL, D_MODEL)
        self.c_proj = nn.Linear(D_MODEL, D_MODEL)

    def forward(self, x):  # x: [B, S, M]
        b, s, m = x.shape
        hd = m // N_HEADS
        q = self.q(x).view(b, s, N_HEADS, hd).transpose(1, 2)
        k = self.k(x).view(b, s, N_HEADS, hd).transpose(1, 2)
        v = self.v(x).view(b, s, N_HEADS, hd).transpose(1, 2)
        # PyTorch's fused attention with its own causal mask (no S x S mask tensor, no
        # scores materialised where a fused kernel applies): as dfdx's causal core, which
        # only visits the causal triangle.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, s, m))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D_MODEL, eps=1e-5)
        self.attn = CausalSelfAttention()
        self.ln_2 = nn.LayerNorm(D_MODEL, eps=1e-5)
        self.c_fc = nn.Linear(D_MODEL, D_FF)
        self.c_proj = nn.Linear(D_FF, D_MODEL)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D_MODEL)
        self.wpe = nn.Embedding(MAX_SEQ, D_MODEL)
        self.h = nn.ModuleList([Block() for _ in range(N_LAYERS)])
        self.ln_f = nn.LayerNorm(D_MODEL, eps=1e-5)
        self.register_buffer("positions", torch.arange(MAX_SEQ), persistent=False)
        proj_std = 0.02 / math.sqrt(2 * N_LAYERS)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = proj_std if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, inputs, flat_pos, targets):
        """log p(target) at the scored positions only: inputs [B, S]; flat_pos [N] indices
        into the flattened [B*S] positions; targets [N]. The tied LM head runs on those N
        rows, not on all B*S (as dfdx's `sequence_logprobs`/`token_nll` do)."""
        s = inputs.shape[1]
        x = self.wte(inputs) + self.wpe(self.positions[:s])
        for block in self.h:
            x = block(x)
        h = self.ln_f(x).reshape(-1, D_MODEL).index_select(0, flat_pos)
        logp = (h @ self.wte.weight.t()).log_softmax(dim=-1)
        return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


class Rows:
    """The synthetic rows as tensors, built once: prompts [B, P] (every prompt has the same
    length P), completions [B, C] right-padded with their lengths. A step's batch, or its
    mismatched pairs (prompt i with completion i+1), is then tensor indexing, no Python loop."""

    def __init__(self, data):
        b = len(data)
        c = max(len(comp) for _, comp, _ in data)
        self.prompts = torch.tensor([p for p, _, _ in data])
        self.completions = torch.full((b, c), PAD_ID, dtype=torch.long)
        for r, (_, comp, _) in enumerate(data):
            self.completions[r, : len(comp)] = torch.tensor(comp)
        self.lengths = torch.tensor([len(comp) for _, comp, _ in data])
        self.labels = torch.tensor([label for _, _, label in data])
        self.p = self.prompts.shape[1]

    def batch(self, prompt_rows, completion_rows):
        """Inputs [B, S], and the scored positions: flat indices [N], their targets [N] and
        rows [N] (as kto_lab::model::TokenBatch: row r scores its completion tokens)."""
        seq = torch.cat([self.prompts[prompt_rows], self.completions[completion_rows]], dim=1)
        inputs, targets = seq[:, :-1], seq[:, 1:]
        s = inputs.shape[1]
        # Completion token j of a row sits at input position P - 1 + j.
        j = torch.arange(s) - (self.p - 1)
        mask = (j >= 0) & (j < self.lengths[completion_rows].unsqueeze(1))
        flat_pos = mask.reshape(-1).nonzero().squeeze(1)
        rows = torch.div(flat_pos, s, rounding_mode="floor")
        return inputs.contiguous(), flat_pos, targets.reshape(-1)[flat_pos], rows


def sequence_logprobs(model, batch, n_rows):
    inputs, flat_pos, targets, rows = batch
    tok = model(inputs, flat_pos, targets)
    return torch.zeros(n_rows, dtype=tok.dtype).index_add(0, rows, tok)


def token_nll(model, batch):
    inputs, flat_pos, targets, _ = batch
    return -model(inputs, flat_pos, targets).mean()


def kto_loss(policy, reference, kl_policy, kl_reference, labels, beta=0.1, wd=1.0, wu=1.0):
    z0 = (kl_policy - kl_reference).mean().clamp(min=0).detach()
    sign = torch.where(labels, beta, -beta)
    weight = torch.where(labels, wd, wu)
    logits = (policy - reference - z0) * sign
    return ((1 - torch.sigmoid(logits)) * weight).mean()


def make_optimizer(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    # One fused kernel over every parameter (as dfdx's one-loop AdamW).
    return torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=True)


def optimizer_step(model, opt, loss):
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def examples(args):
    rng = random.Random(args.seed)
    ids = lambda n: [rng.randrange(1, VOCAB) for _ in range(n)]  # noqa: E731
    return [
        (ids(args.prompt_len), ids(args.completion_len - 2 + i % 5), i % 2 == 0)
        for i in range(args.batch)
    ]


def timing(step_ms, tokens, completion_tokens):
    median = statistics.median(step_ms)
    return {
        "median_ms": median,
        "min_ms": min(step_ms),
        "tokens_per_step": tokens,
        "completion_tokens_per_step": completion_tokens,
        "tokens_per_s": tokens / (median / 1e3),
        "completion_tokens_per_s": completion_tokens / (median / 1e3),
        "step_ms": step_ms,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=12)
    ap.add_argument("--completion-len", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="torch.compile the models (inductor)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    maybe_compile = torch.compile if args.compile else (lambda m: m)
    if args.compile:
        # Compilation happens in the warmup steps, which are not timed; give it enough.
        args.warmup = max(args.warmup, 3)

    data = examples(args)
    rows = Rows(data)
    b = len(data)
    every = torch.arange(b)
    full = rows.batch(every, every)
    seq_len = full[0].shape[1]
    completion = full[1].numel()
    order = torch.Generator().manual_seed(args.seed + 1)

    # SFT
    model = Gpt()
    opt = make_optimizer(model)
    run = maybe_compile(model)
    sft_ms = []
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        idx = torch.randperm(b, generator=order)
        batch = rows.batch(idx, idx)
        opt.zero_grad(set_to_none=True)
        loss = token_nll(run, batch)
        loss_value = loss.item()  # the trainer logs the loss
        optimizer_step(model, opt, loss)
        if i >= args.warmup:
            sft_ms.append((time.perf_counter() - t) * 1e3)
    assert math.isfinite(loss_value)

    # KTO: fresh policy against a frozen copy; matched reference log-probs precomputed once.
    policy = Gpt()
    reference = Gpt()
    reference.load_state_dict(policy.state_dict())
    reference.requires_grad_(False)
    run_policy, run_reference = maybe_compile(policy), maybe_compile(reference)
    with torch.no_grad():
        ref_matched = sequence_logprobs(run_reference, full, b)
    opt = make_optimizer(policy)
    kto_ms = []
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        idx = torch.randperm(b, generator=order)
        batch = rows.batch(idx, idx)
        kl = rows.batch(idx, idx.roll(-1))  # prompt of row k with the completion of row k+1
        opt.zero_grad(set_to_none=True)
        policy_logps = sequence_logprobs(run_policy, batch, b)
        with torch.no_grad():
            kl_policy = sequence_logprobs(run_policy, kl, b)
            kl_reference = sequence_logprobs(run_reference, kl, b)
        loss = kto_loss(policy_logps, ref_matched[idx], kl_policy, kl_reference, rows.labels[idx])
        loss_value = loss.item()
        optimizer_step(policy, opt, loss)
        if i >= args.warmup:
            kto_ms.append((time.perf_counter() - t) * 1e3)
    assert math.isfinite(loss_value)

    positions = b * seq_len
    mode = "torch.compile (inductor)" if args.compile else "eager"
    report = {
        "implementation": f"pytorch {torch.__version__} {mode} (cpu, {torch.get_num_threads()} threads)",
        "config": {
            "batch": args.batch,
            "prompt_len": args.prompt_len,
            "completion_len": args.completion_len,
            "warmup": args.warmup,
            "steps": args.steps,
            "seed": args.seed,
            "cache": False,
        },
        "seq_len": seq_len,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "sft": timing(sft_ms, positions, completion),
        "kto": timing(kto_ms, 3 * positions, 3 * completion),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
