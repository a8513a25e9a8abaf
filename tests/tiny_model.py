"""A tiny random Llama with a locally trained ChatML tokenizer, for fast tests.

Nothing is downloaded: the tokenizer is a small byte-level BPE trained on text generated here,
and the weights are random (seeded). `build_tiny_model(dest)` writes a normal Hugging Face
folder that `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# SmolLM2-Instruct's template, minus the default system prompt text.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_WORDS = ["the", "a", "an", "money", "budget", "save", "saving", "savings", "debt", "loan", "credit", "card", "interest", "rate", "month", "year", "pay", "paid", "payment", "rent", "income", "expense", "expenses", "emergency", "fund", "retirement", "plan", "planner", "account", "bank", "tax", "taxes", "help", "feel", "worried", "stress", "next", "step", "question", "answer", "yes", "no", "maybe", "you", "your", "I", "my", "we", "our", "it", "is", "are", "was", "be", "can", "will", "should", "could", "would", "do", "does", "did", "have", "has", "how", "what", "why", "when", "where", "which", "who", "one", "two", "three", "four", "five", "ten", "hundred", "thousand", "percent", "first", "then", "after", "before", "because", "so", "and", "or", "but", "not", "never", "always", "with", "without", "for", "to", "of", "in", "on", "at", "by", "from", "about", "into", "over", "under", "system", "user", "assistant", "hello", "thanks", "please", "sure", "okay"]


def _corpus(lines: int = 400) -> list[str]:
    import random

    rng = random.Random(0)
    text = []
    for _ in range(lines):
        text.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 20))) + ".")
    return text


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(dest: Path) -> Path:
    """Write a tiny random Llama + ChatML tokenizer to `dest` (idempotent) and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dest = Path(dest)
    marker = dest / ".tiny-model-complete"
    if marker.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    marker.write_text(json.dumps({"vocab_size": len(tokenizer)}))
    return dest


if __name__ == "__main__":
    import sys

    print(build_tiny_model(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-model")))


_WORDS = ["save", "money", "budget", "debt", "plan", "rent", "income", "fund", "the", "a", "you", "your", "next", "step", "pay", "card", "interest", "emergency", "month", "year", "account", "tax", "help", "feel", "worried"]


def write_chat_dataset(path: Path, records: int = 40, seed: int = 1) -> Path:
    """A small synthetic chat dataset in the `messages` format (words from the tiny vocabulary)."""
    rng = random.Random(seed)
    with path.open("w") as handle:
        for _ in range(records):
            messages = [{"role": "system", "content": "You are Elena, a financial planner."}]
            for _ in range(rng.randint(1, 2)):
                messages.append({"role": "user", "content": " ".join(rng.choices(_WORDS, k=rng.randint(3, 12)))})
                messages.append({"role": "assistant", "content": " ".join(rng.choices(_WORDS, k=rng.randint(5, 30)))})
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path
