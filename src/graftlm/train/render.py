"""Rendering: the ONLY place that decides which tokens a sample trains on.

`render(sample, tokenizer)` formats the messages with the tokenizer's chat template, tokenizes the text
once, and labels the tokens of assistant messages (their content and end-of-turn marker, so the model
learns to stop), or every token when the sample is `unmask`ed. Character spans of the assistant messages
come from rendering prefixes of the conversation, so no sentinel tokens are inserted or searched for.
"""

from __future__ import annotations

from typing import Any

from graftlm.errors import ModelError
from graftlm.records import Sample

IGNORE = -100
"""Label of tokens that are not trained on."""


def _template(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool = False) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return str(text)


def assistant_spans(sample: Sample, tokenizer: Any) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation text and the [start, end) character spans of its assistant turns."""
    messages = sample.messages
    text = _template(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for k, msg in enumerate(messages):
        if msg.get("role") != "assistant":
            continue
        before = _template(tokenizer, messages[:k], generation_prompt=True) if k else ""
        upto = _template(tokenizer, messages[: k + 1])
        if not text.startswith(upto) or not upto.startswith(before):
            raise ModelError(
                "the tokenizer's chat template is not prefix-stable (rendering the first messages of a "
                "conversation does not give a prefix of the whole), so assistant turns cannot be located",
                hint="train with a model whose chat template renders each message independently (e.g. ChatML), "
                     "or set the template in tokenizer_config.json",
            )
        spans.append((len(before), len(upto)))
    return text, spans


def render(sample: Sample, tokenizer: Any) -> tuple[list[int], list[int]]:
    """(token ids, labels) for a sample; labels are IGNORE except on trained tokens."""
    text, spans = assistant_spans(sample, tokenizer)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if sample.unmask:
        return ids, list(ids)
    labels = [IGNORE] * len(ids)
    for t, (start, end) in enumerate(enc["offset_mapping"]):
        if end <= start:
            continue
        if any(a <= start < b for a, b in spans):
            labels[t] = ids[t]
    return ids, labels
