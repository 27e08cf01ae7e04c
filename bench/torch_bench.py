#!/usr/bin/env python3
"""PyTorch eager twin of `kto_lab::bench` (src/bench.rs): lab 3's model, batch and steps.

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

    def forward(self, x, mask):  # x: [B, S, M]; mask: additive [S, S]
        b, s, m = x.shape
        hd = m // N_HEADS
        q = self.q(x).view(b, s, N_HEADS, hd).transpose(1, 2)
        k = self.k(x).view(b, s, N_HEADS, hd).transpose(1, 2)
        v = self.v(x).view(b, s, N_HEADS, hd).transpose(1, 2)
        # Explicit additive mask, as the dfdx model does (-1e9 above the diagonal).
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd)) + mask
        y = scores.softmax(dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(b, s, m))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(D_MODEL, eps=1e-5)
        self.attn = CausalSelfAttention()
        self.ln_2 = nn.LayerNorm(D_MODEL, eps=1e-5)
        self.c_fc = nn.Linear(D_MODEL, D_FF)
        self.c_proj = nn.Linear(D_FF, D_MODEL)

    def forward(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, D_MODEL)
        self.wpe = nn.Embedding(MAX_SEQ, D_MODEL)
        self.h = nn.ModuleList([Block() for _ in range(N_LAYERS)])
        self.ln_f = nn.LayerNorm(D_MODEL, eps=1e-5)
        proj_std = 0.02 / math.sqrt(2 * N_LAYERS)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = proj_std if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids):  # [B, S] -> logits [B, S, V]
        s = ids.shape[1]
        mask = torch.triu(torch.full((s, s), MASK_VALUE), diagonal=1)
        x = self.wte(ids) + self.wpe(torch.arange(s))
        for block in self.h:
            x = block(x, mask)
        return self.ln_f(x) @ self.wte.weight.t()  # tied head


def token_batch(pairs):
    """Right-padded inputs/targets/mask, as kto_lab::model::TokenBatch::new."""
    seqs = [p + c for p, c in pairs]
    s = max(len(x) for x in seqs) - 1
    inputs = torch.full((len(pairs), s), PAD_ID, dtype=torch.long)
    targets = torch.full((len(pairs), s), PAD_ID, dtype=torch.long)
    mask = torch.zeros(len(pairs), s)
    for r, ((p, _), seq) in enumerate(zip(pairs, seqs)):
        n = len(seq)
        inputs[r, : n - 1] = torch.tensor(seq[:-1])
        targets[r, : n - 1] = torch.tensor(seq[1:])
        mask[r, len(p) - 1 : n - 1] = 1.0
    return inputs, targets, mask


def token_logprobs(model, batch):
    inputs, targets, mask = batch
    logp = model(inputs).log_softmax(dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * mask


def sequence_logprobs(model, batch):
    return token_logprobs(model, batch).sum(dim=1)


def token_nll(model, batch):
    return -token_logprobs(model, batch).sum() / batch[2].sum().clamp(min=1.0)


def kto_loss(policy, reference, kl_policy, kl_reference, labels, beta=0.1, wd=1.0, wu=1.0):
    z0 = (kl_policy - kl_reference).mean().clamp(min=0).detach()
    sign = torch.where(labels, beta, -beta)
    weight = torch.where(labels, wd, wu)
    logits = (policy - reference - z0) * sign
    return ((1 - torch.sigmoid(logits)) * weight).mean()


def make_optimizer(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-3,
        betas=(0.9, 0.95),
        eps=1e-8,
    )


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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data = examples(args)
    pairs = [(p, c) for p, c, _ in data]
    batch = token_batch(pairs)
    rows, seq_len = batch[0].shape
    completion = int(batch[2].sum().item())
    order = random.Random(args.seed + 1)

    def shuffled():
        idx = list(range(len(data)))
        order.shuffle(idx)
        return idx

    # SFT
    model = Gpt()
    opt = make_optimizer(model)
    sft_ms = []
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        b = token_batch([pairs[j] for j in shuffled()])
        opt.zero_grad(set_to_none=True)
        loss = token_nll(model, b)
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
    with torch.no_grad():
        ref_matched = sequence_logprobs(reference, batch)
    opt = make_optimizer(policy)
    kto_ms = []
    for i in range(args.warmup + args.steps):
        t = time.perf_counter()
        idx = shuffled()
        b = token_batch([pairs[j] for j in idx])
        kl = token_batch([(pairs[idx[k]][0], pairs[idx[(k + 1) % len(idx)]][1]) for k in range(len(idx))])
        labels = torch.tensor([data[j][2] for j in idx])
        opt.zero_grad(set_to_none=True)
        policy_logps = sequence_logprobs(policy, b)
        with torch.no_grad():
            kl_policy = sequence_logprobs(policy, kl)
            kl_reference = sequence_logprobs(reference, kl)
        loss = kto_loss(policy_logps, ref_matched[idx], kl_policy, kl_reference, labels)
        loss_value = loss.item()
        optimizer_step(policy, opt, loss)
        if i >= args.warmup:
            kto_ms.append((time.perf_counter() - t) * 1e3)
    assert math.isfinite(loss_value)

    positions = rows * seq_len
    report = {
        "implementation": f"pytorch {torch.__version__} eager (cpu, {torch.get_num_threads()} threads)",
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
