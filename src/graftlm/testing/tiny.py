"""Tiny random causal LMs for tests: a 2-layer Llama with the committed tiny byte-level BPE tokenizer.

`build_tiny_model(dir)` writes a complete Hugging Face folder (config, safetensors, tokenizer with a
ChatML chat template like SmolLM2's) that every graftlm stage can load like a real model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TOKENIZER_DIR = Path(__file__).parent / "tiny_tokenizer"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_tiny_tokenizer(out: Path = TOKENIZER_DIR, vocab_size: int = 1024) -> Path:
    """(Re)build the committed tiny tokenizer from a short built-in English corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = _corpus()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return out


def _corpus() -> list[str]:
    text = (
        "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
        "they you were her she there been one all we their has would when if so what can no more out do up "
        "question answer context summary facts document knowledge skill write poem email table list number "
        "rating score explanation correct incorrect yes no true false because therefore however example "
        "assistant user system helpful model teacher student train data leaf seed chunk"
    )
    words = text.split()
    lines = []
    for i in range(400):
        w = [words[(i * 7 + j * 13) % len(words)] for j in range(12)]
        lines.append(" ".join(w).capitalize() + ". " + f"Item {i}: {w[0]}? {w[1]}! [[{i % 10}]] Rating: {i % 3 + 1}")
    lines.append("0123456789 ,.;:'\"()[]{}<>/\\-_=+*&^%$#@!?~`|\n\t")
    return lines


def load_tiny_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))


def build_tiny_model(out: Path, *, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                     intermediate: int = 128, max_positions: int = 2048, seed: int = 0) -> Path:
    """Write a random tiny Llama (about 0.2M parameters) with the tiny tokenizer to `out`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tiny_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=max_positions,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out
