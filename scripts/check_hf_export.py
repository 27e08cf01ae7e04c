#!/usr/bin/env python3
"""Check a `kto-lab export` directory against Hugging Face transformers.

Usage: check_hf_export.py DIR [PAIRS_JSON]

DIR is what `kto_lab::model::export_hf` wrote (config.json, model.safetensors,
tokenizer.json, ...). PAIRS_JSON (default DIR/pairs.json) is written by the Rust test
`hf_transformers_scores_the_export_identically` (tests/export.rs):

    {"eos_id": 256,
     "pairs": [{"prompt_ids": [...], "completion_ids": [...], "logprob": -12.3}, ...],
     "texts": [{"text": "...", "ids": [...]}, ...]}

where `logprob` is our Rust model's log pi(completion | prompt) (the sum of completion-token
log-probs) and `ids` is our tokenizer's encoding of `text`.

Checks, failing with exit status 1 on the first problem:
  1. GPT2LMHeadModel.from_pretrained(DIR) loads with no missing, unexpected or mismatched
     weights, and its LM head is tied to the token embedding;
  2. AutoTokenizer and PreTrainedTokenizerFast(tokenizer_file=...) encode every text to our ids,
     and agree on <|endoftext|>;
  3. every pair's completion log-prob matches ours: max |delta| <= TOL (1e-4).

Prints one summary line starting with "OK" on success.

Needs: pip install torch transformers
"""

import copy
import json
import math
import sys
from pathlib import Path

TOL = 1e-4


def fail(message: str) -> None:
    print(f"FAIL: {message}")
    sys.exit(1)


def completion_logprob(model, torch, prompt_ids, completion_ids) -> float:
    """log pi(completion | prompt): feed seq[:-1], score seq[1:], sum over completion targets."""
    seq = list(prompt_ids) + list(completion_ids)
    inputs = torch.tensor([seq[:-1]], dtype=torch.long)
    targets = torch.tensor(seq[1:], dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=inputs, attention_mask=torch.ones_like(inputs))
    logps = torch.log_softmax(out.logits[0], dim=-1)  # [n-1, V], in the model's dtype
    picked = logps[torch.arange(len(targets)), targets]
    # Target t is token t + 1: the completion's targets are the last len(completion) ones.
    return float(picked[len(prompt_ids) - 1 :].double().sum())


def main() -> None:
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        sys.exit(2)
    export_dir = Path(sys.argv[1])
    pairs_path = Path(sys.argv[2]) if len(sys.argv) == 3 else export_dir / "pairs.json"

    import torch
    import transformers
    from transformers import AutoTokenizer, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    doc = json.loads(pairs_path.read_text())

    # 1. The model loads cleanly, head tied.
    model, info = GPT2LMHeadModel.from_pretrained(export_dir, output_loading_info=True)
    model.eval()
    problems = {k: list(v) for k, v in info.items() if v}
    if problems:
        fail(f"loading reported {problems}")
    if model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr():
        fail("lm_head.weight is not tied to transformer.wte.weight")

    # 2. The tokenizer encodes like ours.
    auto_tok = AutoTokenizer.from_pretrained(export_dir)
    file_tok = PreTrainedTokenizerFast(tokenizer_file=str(export_dir / "tokenizer.json"))
    eos_id = doc["eos_id"]
    for name, tok in (("AutoTokenizer", auto_tok), ("PreTrainedTokenizerFast", file_tok)):
        if tok.convert_tokens_to_ids("<|endoftext|>") != eos_id:
            fail(f"{name}: <|endoftext|> is not id {eos_id}")
        for item in doc.get("texts", []):
            ids = tok.encode(item["text"], add_special_tokens=False)
            if ids != item["ids"]:
                fail(f"{name} encodes {item['text']!r} as {ids}, we as {item['ids']}")
    if auto_tok.eos_token_id != eos_id or auto_tok.pad_token_id != eos_id:
        fail(f"AutoTokenizer eos/pad ids are {auto_tok.eos_token_id}/{auto_tok.pad_token_id}")

    # 3. Same log-probs. The float32 model is the comparison that counts (it is what a student
    # runs); a float64 copy shows how much of the difference is float32 rounding on each side.
    # (A float64 copy, rather than a dtype argument, which transformers renamed in 4.56.)
    model64 = copy.deepcopy(model).double().eval()
    max_diff = 0.0
    max_diff64 = 0.0
    worst = None
    for i, pair in enumerate(doc["pairs"]):
        ours = pair["logprob"]
        theirs = completion_logprob(model, torch, pair["prompt_ids"], pair["completion_ids"])
        exact = completion_logprob(model64, torch, pair["prompt_ids"], pair["completion_ids"])
        max_diff64 = max(max_diff64, abs(ours - exact))
        diff = abs(theirs - ours)
        if not math.isfinite(theirs) or diff > max_diff or math.isnan(diff):
            max_diff, worst = diff, (i, ours, theirs)
    n = len(doc["pairs"])
    summary = (
        f"{n} pairs, max |delta log-prob| = {max_diff:.3g} (tol {TOL:g}; "
        f"vs float64 transformers {max_diff64:.3g}); "
        f"worst row {worst[0]}: ours {worst[1]:.6f}, transformers {worst[2]:.6f}; "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"attn {model.config._attn_implementation}"
        if worst
        else f"{n} pairs"
    )
    if n == 0:
        fail("no pairs to compare")
    if not (max_diff <= TOL):
        fail(summary)
    print(f"OK: {summary}")


if __name__ == "__main__":
    main()
