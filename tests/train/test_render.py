"""render(): the loss mask, checked token by token on the tiny ChatML tokenizer."""

from __future__ import annotations

import pytest

from graftlm.records import Sample
from graftlm.testing.tiny import load_tiny_tokenizer
from graftlm.train.render import IGNORE, render


@pytest.fixture(scope="module")
def tok():
    return load_tiny_tokenizer()


def _trained_text(tok, ids: list[int], labels: list[int]) -> list[str]:
    """Decoded runs of consecutive trained tokens."""
    runs: list[list[int]] = []
    prev = False
    for i, lab in zip(ids, labels, strict=True):
        on = lab != IGNORE
        if on:
            assert lab == i
            if not prev:
                runs.append([])
            runs[-1].append(i)
        prev = on
    return [tok.decode(r) for r in runs]


def test_only_assistant_tokens_are_trained(tok) -> None:
    s = Sample("a", [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "What is the leaf?"},
                     {"role": "assistant", "content": "The leaf is green."}])
    ids, labels = render(s, tok)
    text = tok.apply_chat_template(s.messages, tokenize=False)
    assert tok.decode(ids) == text
    assert len(ids) == len(labels)
    assert _trained_text(tok, ids, labels) == ["The leaf is green.<|im_end|>\n"]
    # token by token: everything up to and including "<|im_start|>assistant\n" is masked
    prompt = tok.apply_chat_template(s.messages[:2], tokenize=False, add_generation_prompt=True)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert all(lab == IGNORE for lab in labels[:n_prompt])
    assert all(lab == i for i, lab in zip(ids[n_prompt:], labels[n_prompt:], strict=True))
    assert tok.convert_ids_to_tokens(ids[n_prompt - 1]) != "<|im_end|>"
    assert ids[-2] == tok.convert_tokens_to_ids("<|im_end|>") and labels[-2] == ids[-2]


def test_multi_turn_trains_every_assistant_turn(tok) -> None:
    s = Sample("b", [{"role": "user", "content": "one?"}, {"role": "assistant", "content": "Yes."},
                     {"role": "user", "content": "two?"}, {"role": "assistant", "content": "No."}])
    ids, labels = render(s, tok)
    assert _trained_text(tok, ids, labels) == ["Yes.<|im_end|>\n", "No.<|im_end|>\n"]


def test_unmask_trains_every_token(tok) -> None:
    s = Sample("c", [{"role": "user", "content": "Doc text"}, {"role": "assistant", "content": "Summary"}], unmask=True)
    ids, labels = render(s, tok)
    assert labels == ids


def test_not_prefix_stable_template_is_a_clear_error(tok) -> None:
    from graftlm.errors import ModelError

    weird = load_tiny_tokenizer()
    # A template that renders the last message differently from earlier ones.
    weird.chat_template = ("{% for m in messages %}{% if loop.last %}[{{ m['content'] }}]{% else %}"
                           "{{ m['content'] }}|{% endif %}{% endfor %}")
    s = Sample("d", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                     {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}])
    with pytest.raises(ModelError, match="prefix-stable"):
        render(s, weird)
