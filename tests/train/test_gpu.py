"""The CUDA paths: PyTorch's FlashAttention varlen kernel against a float32 reference, a bf16 training step
with varlen attention and compiled layers against SDPA with the block mask, and a whole phase on the GPU.
Skipped without a CUDA GPU (CI has none; `bench/gpu_check.sh` runs them on a lent GPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from graftlm.train import attention  # noqa: E402
from graftlm.train.packing import Rendered, build_row, row_loss_sum, row_to_device  # noqa: E402

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _rel(a: Any, b: Any) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("kv_heads", [8, 2])
def test_flash_varlen_matches_a_float32_reference(kv_heads: int) -> None:
    assert attention._flash_varlen() is not None, f"torch {torch.__version__} has no usable varlen_attn"
    g = torch.Generator(device="cuda").manual_seed(0)
    lengths = [700, 1, 63, 2048, 129, 1000]
    t = sum(lengths)
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)

    def leaf(*shape: int) -> Any:
        return torch.randn(*shape, device="cuda", generator=g).to(torch.bfloat16).requires_grad_()

    q, k, v = leaf(1, 8, t, 64), leaf(1, kv_heads, t, 64), leaf(1, kv_heads, t, 64)
    assert attention.kernel(q, v) == "flash"
    kw = {"cu_seq_lens_q": cu, "max_length_q": max(lengths)}
    out, _ = attention.varlen_attention(None, q, k, v, None, scaling=0.125, **kw)
    grad = torch.randn_like(out)
    out.backward(grad)
    flash = [out.detach(), q.grad, k.grad, v.grad]

    refs = [x.detach().float().requires_grad_() for x in (q, k, v)]
    assert attention.kernel(refs[0], refs[2]) == "sdpa_per_sample"  # float32, no autocast
    ref_out, _ = attention.varlen_attention(None, *refs, None, scaling=0.125, **kw)
    ref_out.backward(grad.float())
    reference = [ref_out.detach()] + [x.grad for x in refs]
    for name, a, b in zip(("out", "dq", "dk", "dv"), flash, reference, strict=True):
        assert a.shape == b.shape and torch.isfinite(a).all(), name
        assert _rel(a, b) < 2e-2, (name, _rel(a, b))


def _tiny(folder: Path, impl: str) -> Any:
    from transformers import AutoModelForCausalLM

    if impl == "varlen":
        impl = attention.register()
    return AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation=impl, dtype=torch.float32).cuda()


def test_bf16_step_with_varlen_and_compile_matches_sdpa(tiny_model: Path) -> None:
    from graftlm.train.loop import compile_layers

    g = torch.Generator().manual_seed(0)
    rows = [build_row([Rendered.from_labels(s, s) for s in
                       (torch.randint(3, 1000, (n,), generator=g).tolist() for n in lens)])
            for lens in ([300, 5, 90, 611], [1024], [17, 33, 250])]
    results = []
    for impl, compiled in (("sdpa", False), ("varlen", False), ("varlen", True)):
        torch._dynamo.reset()
        model = _tiny(tiny_model, impl)
        if compiled:
            compile_layers(model)
        losses = []
        for row in rows:
            model.zero_grad()
            dev = row_to_device(row, "cuda")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = row_loss_sum(model, dev, 256)
            loss.backward()
            losses.append(float(loss.detach()))
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        results.append((losses, grads))
    (base_losses, base_grads) = results[0]
    for losses, grads in results[1:]:
        for a, b in zip(losses, base_losses, strict=True):
            assert abs(a - b) / abs(b) < 1e-2, (losses, base_losses)
        cos = float(torch.nn.functional.cosine_similarity(grads, base_grads, dim=0))
        assert cos > 0.99, cos


def test_a_phase_trains_on_the_gpu_with_compiled_layers(tiny_model: Path, generate_dir: Path,
                                                        tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from graftlm.artifacts import read_json, read_jsonl
    from graftlm.config import recipe_from_dict
    from graftlm.config.train import MixConfig
    from graftlm.mix import run_mix
    from graftlm.train.run import run_train

    mix = run_mix(generate_dir, tmp_path / "mix", MixConfig(strategy="stacked"))
    recipe = recipe_from_dict({"train": {"student": str(tiny_model), "epochs": 4, "batch_size": 4,
                                         "max_seq_len": 512, "max_tokens_per_row": 2048, "learning_rate": 3e-3,
                                         "warmup_steps": 1, "device": "cuda", "compile": True}})
    out = run_train(mix, tmp_path / "train", recipe.train)
    m = read_json(out / "stacked" / "manifest.json")
    rows = list(read_jsonl(out / "stacked" / "metrics.jsonl"))
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.3
    model = AutoModelForCausalLM.from_pretrained(m["selected"])  # a plain HF folder, loaded on the CPU
    assert model.config.num_hidden_layers == 2
