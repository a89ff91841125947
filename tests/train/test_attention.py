"""Varlen attention and compiled layers on CPU: packed rows give each sample's own logits and gradients,
with or without the host-side boundaries, and compiled layers compute the same step for rows of any length
without recompiling."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from graftlm.train.packing import Rendered, boundary_kwargs, build_row, row_loss_sum
from graftlm.train.render import IGNORE

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from graftlm.train import attention  # noqa: E402


def _model(folder: Path, impl: str) -> Any:
    from transformers import AutoModelForCausalLM

    if impl == "varlen":
        impl = attention.register()
    return AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation=impl, dtype=torch.float32)


def _row(lengths: list[int], seed: int = 0) -> tuple[dict[str, Any], list[list[int]]]:
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(3, 1000, (n,), generator=g).tolist() for n in lengths]
    return build_row([Rendered.from_labels(s, s) for s in seqs]), seqs


def _step(model: Any, row: dict[str, Any], chunk: int) -> tuple[Any, dict[str, Any]]:
    """The loss of one packed row and the gradients it gives (from zero)."""
    model.zero_grad()
    loss = row_loss_sum(model, row, chunk)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _assert_same_step(a: tuple[Any, dict[str, Any]], b: tuple[Any, dict[str, Any]]) -> None:
    torch.testing.assert_close(a[0], b[0], atol=1e-4, rtol=1e-5)
    for name, g in a[1].items():
        torch.testing.assert_close(g, b[1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_boundaries_from_position_ids_and_from_build_row_agree() -> None:
    row, _ = _row([3, 1, 5, 2])
    cu, longest = attention.boundaries(row["position_ids"])
    assert cu.dtype == torch.int32 and cu.tolist() == [0, 3, 4, 9, 11] and longest == 5
    assert row["cu_seq_lens"].tolist() == [0, 3, 4, 9, 11] and row["max_length"] == 5
    # a row that does not start at position 0 still starts a sample at 0
    cu, longest = attention.boundaries(torch.tensor([[4, 5, 0, 1, 2]]))
    assert cu.tolist() == [0, 2, 5] and longest == 3


def test_varlen_packed_logits_equal_separate_runs(tiny_model: Path) -> None:
    model = _model(tiny_model, "varlen").eval()
    assert model.config._attn_implementation == attention.NAME
    row, seqs = _row([9, 1, 5, 12])
    kw = boundary_kwargs(model, row)
    assert kw["max_length_q"] == 12 and kw["cu_seq_lens_q"].tolist() == [0, 9, 10, 15, 27]
    with torch.no_grad():
        packed = model(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False, **kw).logits[0]
        derived = model(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([s]), use_cache=False).logits[0] for s in seqs])
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(derived, alone, atol=1e-5, rtol=1e-5)
    # wrong boundaries change the answer: the function really uses what it is given
    wrong = {**kw, "cu_seq_lens_q": torch.tensor([0, 27], dtype=torch.int32), "max_length_q": 27}
    with torch.no_grad():
        crossed = model(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False, **wrong).logits[0]
    assert (crossed - alone).abs().max() > 1e-2


def test_varlen_loss_and_gradients_equal_sdpa_with_the_block_mask(tiny_model: Path) -> None:
    row, _ = _row([7, 30, 2, 16], seed=3)
    row["targets"][0, :5] = IGNORE
    _assert_same_step(_step(_model(tiny_model, "sdpa"), row, 8), _step(_model(tiny_model, "varlen"), row, 8))


def test_varlen_refuses_what_it_cannot_do() -> None:
    q = torch.randn(2, 4, 6, 8)
    kv = torch.randn(2, 2, 6, 8)
    pos = torch.arange(6)[None]
    with pytest.raises(ValueError, match="batch size 1"):
        attention.varlen_attention(None, q, kv, kv, None, position_ids=pos)
    with pytest.raises(ValueError, match="attention mask"):
        attention.varlen_attention(None, q[:1], kv[:1], kv[:1], torch.ones(1, 1, 6, 6), position_ids=pos)
    with pytest.raises(ValueError, match="position_ids"):
        attention.varlen_attention(None, q[:1], kv[:1], kv[:1], None)
    out, weights = attention.varlen_attention(None, q[:1], kv[:1], kv[:1], None, position_ids=pos)
    assert out.shape == (1, 6, 4, 8) and weights is None


def test_per_sample_sdpa_matches_a_float64_reference() -> None:
    """The CPU path against attention written out by hand in float64, with grouped KV heads."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 10, 8, generator=g)
    k = torch.randn(1, 2, 10, 8, generator=g)
    v = torch.randn(1, 2, 10, 8, generator=g)
    cu = [0, 4, 5, 10]
    out = attention._per_sample_sdpa(q, k, v, cu, None)[0]  # (T, H, D)
    ref = torch.empty(10, 4, 8, dtype=torch.float64)
    for s, e in zip(cu[:-1], cu[1:], strict=True):
        for h in range(4):
            qs, ks, vs = q[0, h, s:e].double(), k[0, h // 2, s:e].double(), v[0, h // 2, s:e].double()
            scores = qs @ ks.T / 8**0.5
            scores = scores.masked_fill(torch.ones(e - s, e - s).triu(1).bool(), float("-inf"))
            ref[s:e, h] = scores.softmax(-1) @ vs
    assert ((out.double() - ref).norm() / ref.norm()) < 1e-6


def test_compiled_layers_give_the_same_step_and_do_not_recompile(tiny_model: Path) -> None:
    """torch.compile of the decoder layers (CPU inductor): the same loss and gradients as eager for rows of
    several lengths and sample counts, with one set of graphs for all of them."""
    pytest.importorskip("torch._inductor")
    from torch._dynamo.utils import counters

    from graftlm.train.loop import compile_layers

    torch._dynamo.reset()
    eager = _model(tiny_model, "varlen")
    compiled = _model(tiny_model, "varlen")
    assert compile_layers(compiled) == 2
    rng = random.Random(0)
    graphs = []
    for step in range(4):
        row, _ = _row([rng.randint(2, 40) for _ in range(rng.randint(1, 6))], seed=step)
        _assert_same_step(_step(eager, row, 16), _step(compiled, row, 16))
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] > 0 and graphs[-1] == graphs[1], f"graphs compiled after each row: {graphs}"


def test_compile_without_a_cpp_compiler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from graftlm.config.train import TrainConfig
    from graftlm.errors import ConfigError
    from graftlm.train.run import check_config

    check_config(TrainConfig(compile=True, device="cpu"))  # this machine has g++
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match=r"C\+\+ compiler") as err:
        check_config(TrainConfig(compile=True, device="cpu"))
    assert err.value.location is not None and err.value.location.field == "train.compile"
    check_config(TrainConfig(compile=False, device="cpu"))


def _reference_varlen(q: Any, k: Any, v: Any, cu_q: Any, cu_k: Any, max_q: int, max_k: int, *,
                      scale: float | None = None, window_size: tuple[int, int] = (-1, -1),
                      enable_gqa: bool = False, native_gqa: bool = False) -> Any:
    """varlen_attn's contract written out in float64: (T, H, D) tensors, causal for window (-1, 0)."""
    assert q.dim() == 3 and cu_q.dtype == torch.int32 and torch.equal(cu_q, cu_k) and max_q == max_k
    assert window_size == (-1, 0), "graftlm asks for causal attention"
    if k.shape[1] != q.shape[1] and not (enable_gqa or native_gqa):
        raise RuntimeError("number of heads in key/value must equal number of heads in query")
    cu = cu_q.tolist()
    assert max_q == max(e - s for s, e in zip(cu[:-1], cu[1:], strict=True))
    groups = q.shape[1] // k.shape[1]
    out = torch.empty(q.shape, dtype=torch.float64)
    for s, e in zip(cu[:-1], cu[1:], strict=True):
        for h in range(q.shape[1]):
            scores = q[s:e, h].double() @ k[s:e, h // groups].double().T * (scale or q.shape[-1] ** -0.5)
            scores = scores.masked_fill(torch.ones(e - s, e - s).triu(1).bool(), float("-inf"))
            out[s:e, h] = scores.softmax(-1) @ v[s:e, h // groups].double()
    return out.to(q.dtype)


def _new_api(q: Any, k: Any, v: Any, cu_q: Any, cu_k: Any, max_q: int, max_k: int, *, scale: float | None = None,
             window_size: tuple[int, int] = (-1, -1), enable_gqa: bool = False) -> Any:  # PyTorch >= 2.12
    return _reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, scale=scale, window_size=window_size,
                             enable_gqa=enable_gqa)


def _old_api(q: Any, k: Any, v: Any, cu_q: Any, cu_k: Any, max_q: int, max_k: int, *, scale: float | None = None,
             window_size: tuple[int, int] = (-1, -1)) -> Any:  # PyTorch 2.10/2.11, kernel refusing grouped heads
    return _reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, scale=scale, window_size=window_size)


def _old_api_native_gqa(q: Any, k: Any, v: Any, cu_q: Any, cu_k: Any, max_q: int, max_k: int, *,
                        scale: float | None = None, window_size: tuple[int, int] = (-1, -1)) -> Any:
    return _reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, scale=scale, window_size=window_size,
                             native_gqa=True)


def _first_api(q: Any, k: Any, v: Any, cu_q: Any, cu_k: Any, max_q: int, max_k: int,
               is_causal: bool = False) -> Any:
    raise AssertionError("never called")


@pytest.mark.parametrize("fn", [_new_api, _old_api, _old_api_native_gqa])
def test_the_flash_glue_gives_per_sample_attention_with_every_kernel_signature(
        fn: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The layout, boundary and grouped-head handling around PyTorch's varlen kernel, checked on CPU against
    kernels that keep its contract (the kernel itself runs in tests/train/test_gpu.py)."""
    monkeypatch.setattr(attention, "_NATIVE_GQA", {})
    api = attention._api(fn)
    assert api is not None and api[1] == (fn is _new_api)
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, h, 12, 8, generator=g) for h in (4, 2, 2))
    cu = torch.tensor([0, 5, 6, 12], dtype=torch.int32)
    for _ in range(2):  # the second call takes the remembered route
        out = attention._flash(*api, q.transpose(1, 2).contiguous().transpose(1, 2), k, v, cu, 6, None, torch.float32)
        torch.testing.assert_close(out, attention._per_sample_sdpa(q, k, v, cu.tolist(), None), atol=1e-5, rtol=1e-5)
    remembered = {"ok": False} if fn is _old_api else {}
    assert remembered == attention._NATIVE_GQA
    assert ("repeating them" in caplog.text) == (fn is _old_api)
    assert attention._api(_first_api) is None
