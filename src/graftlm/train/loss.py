"""Cross-entropy over a large vocabulary without materialising all logits.

`linear_cross_entropy(hidden, weight, targets, chunk)` computes sum_t CE(hidden_t @ weight.T, target_t)
chunk by chunk, computing the gradients for hidden and weight in the same pass (the loss of a chunk is
not needed again), so peak memory holds one chunk of logits instead of the whole row's: for a 49k
vocabulary and a 4096-token row that is 800 MB of float32 logits (plus as much again for their
gradient) avoided. Only trained positions are computed at all.
"""

from __future__ import annotations

from typing import Any

import torch

from graftlm.train.render import IGNORE


class _ChunkedLinearCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                chunk: int) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(hidden) if hidden.requires_grad else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if weight.requires_grad else None
        w = weight.to(hidden.dtype)
        # under autocast the matmuls run in its dtype: cast each chunk's softmax to it once, not once per use
        device_type = hidden.device.type
        mm_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
        for s in range(0, hidden.shape[0], chunk):
            h = hidden[s:s + chunk]
            t = targets[s:s + chunk]
            logits = (h @ w.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None])[:, 0]).sum()
            g = logits.sub_(lse[:, None]).exp_()  # softmax, in place: one chunk of logits alive at a time
            g[torch.arange(t.shape[0], device=t.device), t] -= 1.0
            g = g.to(mm_dtype)
            if grad_h is not None:
                grad_h[s:s + chunk] = g @ w
            if grad_w is not None:
                grad_w += (g.t() @ h).float()
        ctx.save_for_backward(*(x for x in (grad_h, grad_w) if x is not None))
        ctx.has = (grad_h is not None, grad_w is not None)
        ctx.w_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
        saved = list(ctx.saved_tensors)
        gh = gw = None
        if ctx.has[0]:
            g = saved.pop(0)
            gh = g * grad_out.to(g.dtype)
        if ctx.has[1]:
            gw = (saved.pop(0) * grad_out.float()).to(ctx.w_dtype)
        return gh, gw, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int = 2048) -> torch.Tensor:
    """Sum of cross-entropy of `hidden @ weight.T` against `targets` (IGNORE positions skipped), float32."""
    hidden = hidden.reshape(-1, hidden.shape[-1])
    targets = targets.reshape(-1)
    keep = (targets != IGNORE).nonzero()[:, 0]
    if keep.numel() == 0:
        return hidden.sum() * 0.0
    result: torch.Tensor = _ChunkedLinearCE.apply(hidden.index_select(0, keep), weight, targets[keep], chunk)
    return result
