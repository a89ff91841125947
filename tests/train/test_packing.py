"""Padding-free packing: row building, and packed logits equal to the samples run one by one."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftlm.train.packing import Rendered, build_row, pack, row_loss_sum
from graftlm.train.render import IGNORE

torch = pytest.importorskip("torch")


def test_pack_respects_row_size_and_keeps_every_sample() -> None:
    lengths = [7, 3, 9, 1, 4, 4, 10, 2]
    rows = pack(lengths, 10)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 10 for r in rows)
    assert len(rows) == 4  # 40 tokens need at least 4 rows of 10; first-fit decreasing finds it
    assert pack(lengths, 10) == rows
    with pytest.raises(ValueError):
        pack([11], 10)


def test_build_row_positions_restart_and_targets_stay_inside_samples() -> None:
    a = Rendered.from_labels([5, 6, 7], [IGNORE, 6, 7])
    b = Rendered.from_labels([8, 9], [8, 9])
    row = build_row([a, b])
    assert row["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert row["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    # token 7 (last of a) must not predict 8 (first of b)
    assert row["targets"].tolist() == [[6, 7, IGNORE, 9, IGNORE]]
    assert a.trained_tokens == 2 and b.trained_tokens == 1


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_logits_equal_separate_runs(tiny_model: Path, attention: str) -> None:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model), attn_implementation=attention).eval()
    seqs = [torch.randint(3, 1000, (n,)).tolist() for n in (9, 1, 5, 12)]
    rendered = [Rendered.from_labels(s, s) for s in seqs]
    row = build_row(rendered)
    with torch.no_grad():
        packed = model(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([s]), use_cache=False).logits[0] for s in seqs])
        unmasked = model(input_ids=row["input_ids"], use_cache=False).logits[0]
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
    assert (unmasked - alone).abs().max() > 1e-2  # without position ids the samples would see each other
    # and the loss of the packed row is the sum of the samples' losses
    with torch.no_grad():
        total = row_loss_sum(model, row)
        parts = sum(row_loss_sum(model, build_row([r])) for r in rendered)
    torch.testing.assert_close(total, parts, atol=1e-4, rtol=1e-5)


def test_chunked_loss_matches_full_logits(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    from graftlm.train.loss import linear_cross_entropy

    torch.manual_seed(1)
    seqs = [torch.randint(3, 1000, (n,)).tolist() for n in (11, 4, 7)]
    labels = [[IGNORE] * (len(s) // 2) + s[len(s) // 2:] for s in seqs]
    row = build_row([Rendered.from_labels(s, lab) for s, lab in zip(seqs, labels, strict=True)])
    grads = []
    losses = []
    for chunk in (None, 3):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model))
        loss = row_loss_sum(model, row, chunk)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(losses[0], losses[1], atol=1e-4, rtol=1e-5)
    for name, g in grads[0].items():
        torch.testing.assert_close(g, grads[1][name], atol=1e-5, rtol=1e-4, msg=name)
    # no trained position: zero loss that still backpropagates
    h = torch.randn(4, 8, requires_grad=True)
    z = linear_cross_entropy(h, torch.randn(10, 8), torch.full((4,), IGNORE))
    z.backward()
    assert float(z.detach()) == 0.0 and h.grad is not None
