"""Log-likelihood scoring with a local model: the judge-free half of evaluation (multiple choice, drift)."""

from __future__ import annotations

from typing import Any


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text`, with the tokenizer's BOS token first when it has one (so the first real token
    is scored too)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def sequence_logprobs(model: Any, tokenizer: Any, texts: list[str], *, batch_size: int = 8,
                      per_token: bool = False) -> list[float]:
    """Sum of log p(token | previous tokens) over every token of each text after the first; `per_token`:
    divided by the number of those tokens (length-normalised, so longer options are not penalised)."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[float] = []
    for start in range(0, len(texts), batch_size):
        batch = [encode(tokenizer, t) for t in texts[start:start + batch_size]]
        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, seq in enumerate(batch):  # right padding: positions start at 0 for every row
            ids[i, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[i, :len(seq)] = 1
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        picked = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) * mask[:, 1:]
        sums = picked.sum(dim=1)
        if per_token:
            sums = sums / mask[:, 1:].sum(dim=1).clamp(min=1)
        out.extend(float(x) for x in sums)
    return out


def position_logprobs(model: Any, ids: list[int]) -> Any:
    """log-softmax next-token distributions at every position of one sequence: a (len-1, vocab) tensor."""
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids], dtype=torch.long, device=device)).logits.float()[0, :-1]
    return torch.log_softmax(logits, dim=-1).cpu()
