"""Padding-free packing: rendered samples concatenated into rows, with per-sample position ids.

Each row is one micro-batch of shape (1, T). Position ids restart at 0 for every sample, and the row carries
its samples' boundaries: varlen attention (`graftlm.train.attention`, flash) takes the boundaries, and
transformers turns restarting position ids into a block-causal mask for the others (sdpa, eager, flex), so
attention never crosses samples. Targets are shifted inside each sample, so the last token of one
sample is never asked to predict the first token of the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graftlm.train.render import IGNORE


@dataclass(frozen=True)
class Rendered:
    """A rendered sample: token ids and next-token targets (IGNORE where not trained)."""

    ids: list[int]
    targets: list[int]

    @classmethod
    def from_labels(cls, ids: list[int], labels: list[int]) -> Rendered:
        """Targets are the labels moved one position left: token t is trained to predict label t+1."""
        return cls(list(ids), list(labels[1:]) + [IGNORE])

    @property
    def trained_tokens(self) -> int:
        return sum(1 for t in self.targets if t != IGNORE)


def pack(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Group sample indices into rows of at most `max_tokens` tokens (first-fit decreasing; deterministic).

    Every length must be <= max_tokens. Rows come out longest first."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        if n > max_tokens:
            raise ValueError(f"sample {i} has {n} tokens, more than a row's {max_tokens}")
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(max_tokens - n)
    return rows


def build_row(samples: list[Rendered]) -> dict[str, Any]:
    """One packed row: input_ids, position_ids, targets (tensors of shape (1, T)), and the sample boundaries
    for varlen attention: cu_seq_lens (int32 tensor of the N+1 cumulative lengths) and max_length (int)."""
    import torch

    ids: list[int] = []
    pos: list[int] = []
    tgt: list[int] = []
    cu = [0]
    for s in samples:
        ids.extend(s.ids)
        pos.extend(range(len(s.ids)))
        tgt.extend(s.targets)
        cu.append(cu[-1] + len(s.ids))
    return {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "position_ids": torch.tensor([pos], dtype=torch.long),
        "targets": torch.tensor([tgt], dtype=torch.long),
        "cu_seq_lens": torch.tensor(cu, dtype=torch.int32),
        "max_length": max((len(s.ids) for s in samples), default=0),
    }


def row_to_device(row: dict[str, Any], device: str) -> dict[str, Any]:
    """The row with its tensors on `device` (max_length stays a host int)."""
    return {k: v.to(device, non_blocking=True) if hasattr(v, "to") else v for k, v in row.items()}


def boundary_kwargs(model: Any, row: dict[str, Any]) -> dict[str, Any]:
    """The sample boundaries as transformers' `cu_seq_lens_*` / `max_length_*` keyword arguments, for the
    attention implementations that use them (computed on the host: no device sync); {} for the others."""
    from graftlm.train.attention import NAME

    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in (NAME, "flash_attention_2", "flash_attention_3") or "cu_seq_lens" not in row:
        return {}
    cu, longest = row["cu_seq_lens"], int(row["max_length"])
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}


def chunked_head(model: Any) -> Any:
    """The output projection when the chunked loss applies to this model (a plain bias-free Linear head with
    no logit scaling or soft-capping), else None."""
    import torch

    head = model.get_output_embeddings()
    cfg = model.config
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    return head


def row_hidden(model: Any, row: dict[str, Any]) -> Any:
    """The decoder's last hidden states for one packed row (before the output projection)."""
    return model.get_decoder()(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False,
                               **boundary_kwargs(model, row))[0]


def row_loss_sum(model: Any, row: dict[str, Any], chunk_tokens: int | None = None) -> Any:
    """Sum of the cross-entropy over the row's trained tokens (float32), from one packed forward pass.

    No attention mask is passed on purpose: with `attention_mask=None` and no cache, transformers derives
    the block-causal mask from the restarting position ids. With `chunk_tokens` (and a model it applies
    to) the loss comes from the decoder's hidden states chunk by chunk, never holding the full logits."""
    import torch.nn.functional as F

    head = chunked_head(model) if chunk_tokens else None
    if head is not None:
        from graftlm.train.loss import linear_cross_entropy

        return linear_cross_entropy(row_hidden(model, row), head.weight, row["targets"], chunk_tokens or 1)
    out = model(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False,
                **boundary_kwargs(model, row))
    logits = out.logits.float()
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), row["targets"].view(-1),
                           ignore_index=IGNORE, reduction="sum")
