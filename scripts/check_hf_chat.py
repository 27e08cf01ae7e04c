#!/usr/bin/env python3
"""Check that a `kto-lab export` travels with its prompt format, and that TRL trains on our feedback.

Usage: check_hf_chat.py HF_DIR EXPECTED_JSON TRAIN_JSONL

HF_DIR is `kto-lab export` of lab 3's KTO model, TRAIN_JSONL is `kto-lab feedback export` of
lab 3's feedback.jsonl (conversational rows), and EXPECTED_JSON is written by the Rust test
`hf_chat_template_and_trl_take_the_model_as_trained` (tests/export.rs):

    {"eos_id": 256, "max_new_tokens": 24,
     "prompts": [{"question": "...", "prompt_ids": [...], "answer_ids": [...], "answer": "..."}],
     "rows": [{"prompt_ids": [...], "completion_ids": [...]}, ...]}

with our tokens of every toy-world prompt and our greedy answer to it, and our trainer's
tokens of every row of TRAIN_JSONL, in file order.

Checks, failing with exit status 1 on the first problem:
  1. the tokenizer's chat template, applied to [{"role": "user", "content": question}] with
     add_generation_prompt=True, gives our prompt tokens for every prompt;
  2. model.generate (greedy, same max_new_tokens) from those tokens gives our greedy answer for
     every prompt (where a step's two best logits are within TIE of each other, the argmax may
     legitimately differ in float32: such prompts are counted and reported, not failed);
  3. TRL's KTOTrainer, given TRAIN_JSONL, tokenizes every row to our prompt and completion
     tokens, and trains max_steps=2 with a finite loss and TRL's KTO metrics logged.

Prints one summary line starting with "OK" on success.

Needs: pip install torch transformers trl
"""

import json
import math
import sys
import tempfile
from pathlib import Path

TIE = 1e-4


def fail(message: str) -> None:
    print(f"FAIL: {message}")
    sys.exit(1)


def greedy_divergence(model, torch, prompt_ids, ours, theirs):
    """At the first token where the two answers differ: the gap between transformers' two best
    logits there (a near-tie explains a different argmax)."""
    k = next(i for i in range(min(len(ours), len(theirs)) + 1) if ours[i : i + 1] != theirs[i : i + 1])
    seq = torch.tensor([list(prompt_ids) + list(theirs[:k])], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=seq).logits[0, -1]
    top = torch.topk(logits, 2).values
    return k, float(top[0] - top[1])


def main() -> None:
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    hf_dir, expected_path, train_path = (Path(a) for a in sys.argv[1:])

    import torch
    import transformers
    import trl
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    doc = json.loads(expected_path.read_text())
    eos_id = doc["eos_id"]
    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    if not tok.chat_template:
        fail(f"{hf_dir}: the tokenizer has no chat template")

    # 1. and 2. The template gives our prompt tokens; greedy generation our answers.
    ties = []
    for item in doc["prompts"]:
        q = item["question"]
        ids = tok.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        if ids != item["prompt_ids"]:
            fail(f"chat template: {q!r} -> {ids} ({tok.decode(ids)!r}), ours {item['prompt_ids']}")
        inputs = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad():
            out = model.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                do_sample=False,
                max_new_tokens=doc["max_new_tokens"],
                eos_token_id=eos_id,
                pad_token_id=eos_id,
            )
        new = out[0, len(ids) :].tolist()
        theirs = new[: new.index(eos_id)] if eos_id in new else new
        if theirs != item["answer_ids"]:
            k, gap = greedy_divergence(model, torch, ids, item["answer_ids"], theirs)
            if gap > TIE:
                fail(
                    f"greedy answer to {q!r}: transformers {tok.decode(theirs)!r}, "
                    f"ours {item['answer']!r} (token {k}, best two logits {gap:.3g} apart)"
                )
            ties.append(q)
    with_template = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    try:
        tok.apply_chat_template([{"role": "system", "content": "Be brief."}], tokenize=False)
        fail("the chat template accepted a system turn the model never saw")
    except Exception as e:  # transformers raises its TemplateError from raise_exception
        if "user and assistant" not in str(e):
            fail(f"a system turn: unexpected error {e!r}")

    # 3. TRL tokenizes our feedback as our trainer does, and trains on it.
    train = load_dataset("json", data_files=str(train_path), split="train")
    if len(train) != len(doc["rows"]):
        fail(f"{train_path}: {len(train)} rows, expected {len(doc['rows'])}")
    with tempfile.TemporaryDirectory() as out_dir:
        args = trl.KTOConfig(
            output_dir=out_dir,
            max_steps=2,
            per_device_train_batch_size=4,
            learning_rate=1e-5,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
            dataloader_num_workers=0,
        )
        trainer = trl.KTOTrainer(model=model, args=args, train_dataset=train, processing_class=tok)
        data = trainer.train_dataset
        for i, (row, want) in enumerate(zip(data, doc["rows"])):
            if row["prompt_ids"] != want["prompt_ids"] or row["completion_ids"] != want["completion_ids"]:
                fail(
                    f"{train_path}:{i + 1}: TRL tokenized the row as prompt {row['prompt_ids']} + "
                    f"completion {row['completion_ids']}, our trainer as {want['prompt_ids']} + "
                    f"{want['completion_ids']}"
                )
        result = trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    if trainer.state.global_step != 2 or len(logs) != 2:
        fail(f"TRL ran {trainer.state.global_step} steps, logged {len(logs)}")
    for h in logs:
        for key in ("loss", "kl"):
            if not math.isfinite(h.get(key, float("nan"))):
                fail(f"TRL step {h.get('step')}: {key} = {h.get(key)}")
    print(
        f"OK: chat template renders {with_template!r} and our tokens for {len(doc['prompts'])} prompts; "
        f"greedy answers equal on {len(doc['prompts']) - len(ties)}, near-ties (|logit gap| <= {TIE:g}) "
        f"on {len(ties)}{': ' + repr(ties) if ties else ''}; TRL's KTOTrainer tokenized {len(data)} rows "
        f"as we do and trained 2 steps (loss {logs[0]['loss']:.4f}, {logs[-1]['loss']:.4f}; "
        f"kl {logs[-1]['kl']:.4f}; train_loss {result.training_loss:.4f}); "
        f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}"
    )


if __name__ == "__main__":
    main()
