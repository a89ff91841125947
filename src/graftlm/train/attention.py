"""Attention over packed rows that never crosses samples, with no mask at all.

transformers keeps packed samples apart by building a (T x T) block-causal mask from the restarting
position ids; SDPA then runs its masked kernel over the whole row, paying for every pair of tokens of
the row although only pairs inside one sample count. `varlen` attention instead hands the sample
boundaries (cumulative lengths) to a variable-length kernel that only computes inside each sample:

- on CUDA with bf16/fp16 inputs, PyTorch's own FlashAttention varlen kernel
  (`torch.nn.attention.varlen.varlen_attn`, PyTorch >= 2.10): no flash-attn package needed;
- anywhere else (CPU, float32, older PyTorch), causal SDPA run sample by sample: exact, and still free
  of the T x T mask.

`register()` adds it to transformers as the attention implementation `graft_varlen` (the trainer does
this when `train.attention` is `varlen`). Sample boundaries come from the `cu_seq_lens_q` / `max_length_q`
keyword arguments when the caller passes them (`packing.build_row` computes them on the host, so no
device sync is needed), else from the position ids. The function is kept out of torch.compile graphs
(`torch.compiler.disable`), so compiled decoder layers see neither the boundaries nor their count.
"""

from __future__ import annotations

import inspect
import logging
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger("graftlm.train")

NAME = "graft_varlen"
"""The name under which `register()` puts varlen attention into transformers' AttentionInterface."""


def boundaries(position_ids: Any) -> tuple[Any, int]:
    """Cumulative sample lengths (int32, starting at 0) and the longest sample, from a packed row's
    position ids (shape (1, T); every sample's positions start at 0)."""
    pos = position_ids.reshape(-1)
    starts = (pos == 0).nonzero().reshape(-1)
    if starts.numel() == 0 or int(starts[0]) != 0:
        starts = torch.cat([torch.zeros(1, dtype=starts.dtype, device=starts.device), starts])
    end = torch.tensor([pos.numel()], dtype=starts.dtype, device=starts.device)
    cu = torch.cat([starts, end]).to(torch.int32)
    return cu, int((cu[1:] - cu[:-1]).max())


_NATIVE_GQA: dict[str, bool] = {}
"""Set to False once a PyTorch's varlen kernel refused grouped KV heads (PyTorch 2.10/2.11 take no enable_gqa)."""


@cache
def _flash_varlen() -> tuple[Any, bool] | None:
    """PyTorch's varlen FlashAttention and whether it takes `enable_gqa`, or None when this PyTorch has none."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return _api(varlen_attn)


def _api(fn: Any) -> tuple[Any, bool] | None:
    """`fn` and whether it takes `enable_gqa` (PyTorch >= 2.12), or None when it takes no `window_size`
    (the first versions' signature)."""
    params = inspect.signature(fn).parameters
    if "window_size" not in params:
        return None
    return fn, "enable_gqa" in params


def _per_sample_sdpa(q: Any, k: Any, v: Any, cu: list[int], scale: float | None) -> Any:
    """Causal SDPA over each sample's slice of (1, H, T, D) tensors; returns (1, T, H, D)."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    parts = [F.scaled_dot_product_attention(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], is_causal=True, scale=scale)
             for s, e in zip(cu[:-1], cu[1:], strict=True) if e > s]
    return torch.cat(parts, dim=2).transpose(1, 2)


def _half_dtype(q: Any, v: Any) -> Any:
    """The 16-bit dtype the flash kernel should run in, or None (float32 without autocast)."""
    if torch.is_autocast_enabled("cuda"):
        return torch.get_autocast_dtype("cuda")
    if q.dtype in (torch.bfloat16, torch.float16):
        return q.dtype
    if v.dtype in (torch.bfloat16, torch.float16):
        return v.dtype
    return None


def kernel(query: Any, value: Any) -> str:
    """Which kernel `varlen_attention` runs for these inputs: `flash` or `sdpa_per_sample`."""
    if query.is_cuda and _flash_varlen() is not None and _half_dtype(query, value) is not None:
        return "flash"
    return "sdpa_per_sample"


def varlen_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
                     dropout: float = 0.0, **kwargs: Any) -> tuple[Any, None]:
    """transformers attention function: (1, H, T, D) query, (1, Hkv, T, D) key/value -> ((1, T, H, D), None)."""
    return _varlen_attention(query, key, value, attention_mask, scaling, dropout, kwargs)


def _varlen_attention_impl(query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None,
                           dropout: float, kwargs: dict[str, Any]) -> tuple[Any, None]:
    if query.shape[0] != 1:
        raise ValueError("varlen attention runs on packed rows of batch size 1")
    if attention_mask is not None:
        raise ValueError("varlen attention takes sample boundaries, not an attention mask")
    if dropout:
        raise ValueError("varlen attention has no attention dropout")
    cu, longest = kwargs.get("cu_seq_lens_q"), kwargs.get("max_length_q")
    if cu is None or longest is None:
        position_ids = kwargs.get("position_ids")
        if position_ids is None:
            raise ValueError("varlen attention needs position_ids or cu_seq_lens_q/max_length_q")
        cu, longest = boundaries(position_ids)
    if kernel(query, value) == "flash":
        fn, takes_gqa = _flash_varlen()  # type: ignore[misc]
        return _flash(fn, takes_gqa, query, key, value, cu, int(longest), scaling, _half_dtype(query, value)), None
    bounds = [int(x) for x in (cu.tolist() if hasattr(cu, "tolist") else cu)]
    return _per_sample_sdpa(query, key, value, bounds, scaling), None


def _flash(fn: Any, takes_gqa: bool, query: Any, key: Any, value: Any, cu: Any, longest: int,
           scaling: float | None, half: Any) -> Any:
    """`fn` (PyTorch's varlen_attn: (T, H, D) tensors, cumulative lengths, window (-1, 0) for causal) on
    (1, H, T, D) inputs in the 16-bit dtype `half`; returns (1, T, H, D)."""
    q = query.transpose(1, 2)[0].to(half)  # (T, H, D)
    k = key.transpose(1, 2)[0].to(half)
    v = value.transpose(1, 2)[0].to(half)
    cu_dev = torch.as_tensor(cu).to(device=q.device, dtype=torch.int32, non_blocking=True)
    grouped = k.shape[1] != q.shape[1]
    if grouped and not takes_gqa and not _NATIVE_GQA.get("ok", True):
        k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], dim=1) for x in (k, v))
        grouped = False
    extra = {"enable_gqa": True} if grouped and takes_gqa else {}
    try:
        out = fn(q, k, v, cu_dev, cu_dev, longest, longest, scale=scaling, window_size=(-1, 0), **extra)
    except RuntimeError:
        if not grouped or takes_gqa:
            raise
        # a PyTorch whose kernel wants as many KV heads as query heads: repeat them from now on
        log.warning("varlen attention: this PyTorch's kernel takes no grouped KV heads; repeating them")
        _NATIVE_GQA["ok"] = False
        return _flash(fn, takes_gqa, query, key, value, cu, longest, scaling, half)
    return out.unsqueeze(0)


_varlen_attention = torch.compiler.disable(_varlen_attention_impl)


def register() -> str:
    """Make `graft_varlen` a transformers attention implementation (idempotent); returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, varlen_attention)
    return NAME
