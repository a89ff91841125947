"""Forgetting control: keep the student close to its base model while it learns new knowledge.

Two penalties, both off by default and chosen by measurement (`bench/knowledge.py`, docs/knowledge.md):
- `train.kl_to_base`: KL(base || student) of the next-token distributions at evenly spaced positions of
  each packed row, the base's logits computed from a frozen copy under no_grad, added to the loss;
- `train.decay_to_base` (L2-SP): after every optimizer step each trained weight moves toward its base
  value by `lr * decay_to_base` of the difference (decoupled, like AdamW's decay toward zero).
"""

from __future__ import annotations

from typing import Any

import torch

from graftlm.errors import ModelError
from graftlm.train.packing import chunked_head, row_hidden


def kl_positions(length: int, limit: int) -> list[int]:
    """At most `limit` evenly spaced positions of a row of `length` tokens (all of them when it is short)."""
    if length <= limit:
        return list(range(length))
    return [(i * length) // limit for i in range(limit)]


def kl_sum(student_logits: torch.Tensor, base_logits: torch.Tensor) -> torch.Tensor:
    """Sum over positions of KL(base || student) of the distributions the logits define, in float32."""
    lp_student = torch.log_softmax(student_logits.float(), dim=-1)
    lp_base = torch.log_softmax(base_logits.float(), dim=-1)
    return (lp_base.exp() * (lp_base - lp_student)).sum()


def _head(model: Any) -> Any:
    head = chunked_head(model)
    if head is None:
        raise ModelError("train.kl_to_base needs a model whose output layer is a plain bias-free linear layer",
                         hint="set train.kl_to_base: 0 for this model")
    return head


def row_loss_and_kl(model: Any, base: Any, row: dict[str, Any], chunk_tokens: int | None,
                    positions_per_row: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of cross-entropy over the row's trained tokens, sum of KL(base || student) over its penalty
    positions), from one forward pass of the student and one gradient-free pass of the base."""
    import torch.nn.functional as F

    from graftlm.train.loss import linear_cross_entropy
    from graftlm.train.render import IGNORE

    head = _head(model)
    hidden = row_hidden(model, row)
    targets = row["targets"]
    if chunk_tokens:
        ce = linear_cross_entropy(hidden, head.weight, targets, chunk_tokens)
    else:
        logits = head(hidden).float()
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), ignore_index=IGNORE,
                             reduction="sum")
    sel = torch.tensor(kl_positions(hidden.shape[1], positions_per_row), dtype=torch.long, device=hidden.device)
    student_logits = head(hidden[0].index_select(0, sel))
    with torch.no_grad():
        base_logits = _head(base)(row_hidden(base, row)[0].index_select(0, sel))
    return ce, kl_sum(student_logits, base_logits)


def penalty_positions(lengths: list[int], positions_per_row: int) -> int:
    """How many positions the KL penalty covers over rows of these lengths."""
    return sum(min(n, positions_per_row) for n in lengths)


def freeze(base: Any, device: str) -> Any:
    """The base model frozen on `device`: eval mode, no gradients."""
    base.requires_grad_(False)
    base.eval()
    return base.to(device)


def anchors(model: Any, base: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(trained parameter, its base value) for every trained parameter, matched by name."""
    base_params = dict(base.named_parameters())
    pairs = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        b = base_params.get(name)
        if b is None or b.shape != p.shape:
            raise ModelError(f"decay_to_base: the base model has no parameter {name} of shape {tuple(p.shape)}",
                             hint="train.decay_to_base works for full fine-tuning of the same architecture")
        pairs.append((p, b.detach()))
    return pairs


@torch.no_grad()
def decay_toward(pairs: list[tuple[torch.Tensor, torch.Tensor]], factor: float) -> None:
    """Move each parameter `factor` of the way toward its base value (w += factor * (w_base - w))."""
    for p, b in pairs:
        p.lerp_(b, factor)
