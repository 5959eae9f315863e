"""Test assets made on the fly: a tiny random-weight chat model and service checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def unavailable(what: str) -> None:
    """Skip when a service or data set is missing; under CI=true fail instead (CI has them all)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} is not available")


def make_tiny_model(target: Path, corpus: list[str], hidden_size: int = 32) -> Path:
    """A 2-layer random Llama with a small BPE tokenizer trained on `corpus`, saved as an HF folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


INTENT_EXAMPLES = {
    "refund": ["I want my money back", "how do I get a refund", "refund my order please", "can I get a refund for this",
               "I was charged and want a refund", "please return my money", "refund the payment", "money back please",
               "I need a refund for my purchase", "give me a refund"],
    "shipping": ["where is my package", "when will my order arrive", "track my parcel", "my delivery is late",
                 "has my order shipped yet", "how long does shipping take", "where is my delivery",
                 "the parcel has not arrived", "shipping status of my order", "when does my package come"],
    "password": ["I forgot my password", "reset my password", "how do I change my password", "cannot log in password",
                 "my password does not work", "password reset link", "help me reset the password",
                 "new password please", "I lost my password", "change the account password"],
    "oos": ["what is the weather tomorrow", "tell me a joke", "how tall is mount everest", "recipe for pancakes",
            "who won the football game", "play some music", "what is the capital of france",
            "translate hello to german", "how many legs does a spider have", "what time is it in tokyo"],
}


def write_intents(path: Path, examples: dict[str, list[str]] = INTENT_EXAMPLES) -> Path:
    """A small intents file (JSONL, or CSV `text,category` when the name ends in .csv)."""
    import csv
    import json

    rows = [(text, label) for label, texts in examples.items() for text in texts]
    if path.suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "category"])
            writer.writerows(rows)
    else:
        path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows), encoding="utf-8")
    return path


CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("ASSISTANT_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
"""Screenshots the browser tests save, to be looked at (kept out of git)."""


def chromium_page(playwright_context, width: int = 1280):
    """A new page of Debian's headless Chromium at `width` px, or a skip (a failure under CI=true)."""
    if not CHROMIUM.is_file():
        unavailable("Debian's chromium (/usr/bin/chromium)")
    browser = playwright_context.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    return browser, browser.new_page(viewport={"width": width, "height": 900})
