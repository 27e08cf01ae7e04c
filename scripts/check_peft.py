#!/usr/bin/env python3
"""Check a LoRA export (`kto_lab::model::export_peft`) against PEFT.

Usage: check_peft.py BASE_DIR ADAPTER_DIR PAIRS_JSON

BASE_DIR is the base model as `export_hf` wrote it; ADAPTER_DIR holds adapter_config.json and
adapter_model.safetensors. PAIRS_JSON is written by the Rust test
`peft_loads_the_adapters_as_trained` (tests/export.rs):

    {"pairs": [{"prompt_ids": [...], "completion_ids": [...],
                "logprob": -12.3, "base_logprob": -13.1}, ...]}

where `logprob` is our model's log pi(completion | prompt) with the adapters on and
`base_logprob` with them off.

Checks, failing with exit status 1 on the first problem:
  1. PeftModel.from_pretrained(GPT2LMHeadModel(BASE_DIR), ADAPTER_DIR) puts a LoRA adapter on
     every block's attn.c_attn and attn.c_proj (and nowhere else), with the file's weights;
  2. every pair's log-prob with the adapters matches ours, and with `disable_adapter()` the
     base model's: max |delta| <= TOL (1e-4);
  3. merge_and_unload() gives the same log-probs.

Prints one summary line starting with "OK" on success.

Needs: pip install torch transformers peft
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from check_hf_export import completion_logprob, fail  # noqa: E402

TOL = 1e-4


def worst(model, torch, pairs, key) -> float:
    return max(
        abs(completion_logprob(model, torch, p["prompt_ids"], p["completion_ids"]) - p[key])
        for p in pairs
    )


def main() -> None:
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    base_dir, adapter_dir, pairs_path = (Path(a) for a in sys.argv[1:])

    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import GPT2LMHeadModel

    pairs = json.loads(pairs_path.read_text())["pairs"]
    base = GPT2LMHeadModel.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(base, adapter_dir)
    model.eval()

    # 1. Adapters on exactly the attention projections, holding the file's numbers.
    saved = load_file(str(adapter_dir / "adapter_model.safetensors"))
    adapted = sorted(n for n, m in model.named_modules() if hasattr(m, "lora_A") and len(m.lora_A))
    n_layers = base.config.n_layer
    expected = sorted(
        f"base_model.model.transformer.h.{i}.attn.{m}" for i in range(n_layers) for m in ("c_attn", "c_proj")
    )
    if adapted != expected:
        fail(f"LoRA layers {adapted}, expected {expected}")
    state = model.state_dict()
    for name, tensor in saved.items():
        loaded = state.get(name.replace(".weight", ".default.weight"))
        if loaded is None or loaded.shape != tensor.shape or not torch.equal(loaded, tensor):
            fail(f"{name}: not loaded as saved")

    # 2. Log-probs with the adapters, and without.
    on = worst(model, torch, pairs, "logprob")
    if on > TOL:
        fail(f"adapters on: max |delta log-prob| = {on:.2e} > {TOL}")
    with model.disable_adapter():
        off = worst(model, torch, pairs, "base_logprob")
    if off > TOL:
        fail(f"adapters off: max |delta log-prob| = {off:.2e} > {TOL}")
    shift = max(abs(p["logprob"] - p["base_logprob"]) for p in pairs)
    if shift < 100 * TOL:
        fail(f"the adapters barely change the model (max shift {shift:.2e}): the check would prove nothing")

    # 3. Merged into the weights.
    merged = model.merge_and_unload()
    merged_delta = worst(merged, torch, pairs, "logprob")
    if merged_delta > TOL:
        fail(f"merged: max |delta log-prob| = {merged_delta:.2e} > {TOL}")

    print(
        f"OK: PEFT loads LoRA on {len(adapted)} layers; {len(pairs)} pairs, max |delta| adapters on "
        f"{on:.1e}, off {off:.1e}, merged {merged_delta:.1e} (adapters shift log-probs by up to {shift:.2f})"
    )


if __name__ == "__main__":
    main()
