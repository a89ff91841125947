"""Does the example knowledge leaf's knowledge stick, and what does it cost in general-text drift? One table.

Trains the same student with the same settings (cpu-demo-like: lr 1e-4, batch 4, one stacked phase) on
several data sets, each with the forgetting-control variants asked for, and scores every trained model on
an exam written from the documents (not from generated data, `examples/exams/vescary.jsonl`):

- closed-book fact recall of the base and of the trained model (`graftlm.evaluate.facts.fact_recall`: the
  share of each question's keywords the answer states, after normalising case, numbers, number words and
  units), the open-book bound (the base model with the
  exam item's passage in its prompt), the share of the gap between them that training closed;
- drift: the change of perplexity on the general conversations the evaluation uses (`evaluate/retention.py`);
- training samples per fact of the documents and the training wall time.

Data sets (`--rows`):
- `baseline`: no teacher at all: the leaf's seed Q&A plus the documents' chunks as text with loss on every
  token, repeated `--repeats` times;
- `ceiling`: hand-written Q&A, one or more per fact of both documents and phrased unlike the exam
  (`examples/exams/vescary-handwritten-qa.jsonl`, 75 facts), once, plus the chunks as text, repeated the same way;
- `pipeline-old` / `pipeline-new` (with `--pipeline-dir`, a `graft generate` folder of the example taxonomy):
  the leaf's generated samples as they are (old), or through `graftlm.mix`'s knowledge phase, which adds the
  documents' own text at `--document-ratio` (new). Without `--pipeline-dir` they are skipped with a note.

    .venv/bin/python bench/knowledge.py --out runs/bench-knowledge                  # baseline + ceiling, plain
    .venv/bin/python bench/knowledge.py --rows baseline --variants '{"plain": {}, "kl1": {"kl_to_base": 1.0}}'
    .venv/bin/python bench/knowledge.py --pipeline-dir runs/demo/generate --rows pipeline-old,pipeline-new

Finished rows are kept in `--out/rows/` and skipped on a rerun (an interrupted training resumes).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import shutil
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LEAF = ROOT / "examples" / "taxonomy" / "knowledge" / "geography" / "islands" / "vescary" / "qna.yaml"
DOCUMENTS = [ROOT / "examples" / "documents" / "vescary.md",
             ROOT / "examples" / "pdf_source" / "vescary-economy-and-culture.txt"]
EXAM = ROOT / "examples" / "exams" / "vescary.jsonl"
HANDWRITTEN = ROOT / "examples" / "exams" / "vescary-handwritten-qa.jsonl"
ROWS = ("baseline", "ceiling", "pipeline-old", "pipeline-new")

log = logging.getLogger("bench.knowledge")


class BenchInputError(ValueError):
    """A bench input file that cannot be used; the message names the file, line and field."""


# -- inputs -------------------------------------------------------------------------------------------------

def read_qa_file(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """A JSONL file of Q&A records, each with the `required` fields (strings, or a non-empty list of strings
    for `keywords`)."""
    from graftlm.artifacts import read_jsonl

    rows = []
    for i, rec in enumerate(read_jsonl(path), start=1):  # a bad JSON line raises InputError naming it
        for key in required:
            value = rec.get(key) if isinstance(rec, dict) else None
            ok = (isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value)
                  if key == "keywords" else isinstance(value, str) and value.strip())
            if not ok:
                kind = "a non-empty list of strings" if key == "keywords" else "a non-empty string"
                raise BenchInputError(f"{path}:{i}: field `{key}` must be {kind}")
        rows.append(rec)
    if not rows:
        raise BenchInputError(f"{path}: no records")
    return rows


def leaf_and_chunks(chunk_tokens: int) -> tuple[Any, list[dict[str, Any]]]:
    """The example knowledge leaf and its documents' chunks as `chunks.jsonl` rows (the generator's chunker)."""
    from graftlm.generate.chunking import chunk_document
    from graftlm.taxonomy.load import parse_leaf

    leaf = parse_leaf(LEAF, ROOT / "examples" / "taxonomy")
    chunks: list[dict[str, Any]] = []
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        sha = hashlib.sha256(text.encode()).hexdigest()
        chunks.extend(c.to_json(leaf.name) for c in chunk_document(doc.name, sha, text, chunk_tokens))
    return leaf, chunks


def qa_samples(leaf: Any, pairs: list[tuple[str, str]], task: str) -> list[Any]:
    """Q&A training samples (loss on the answer) of the leaf."""
    from graftlm.records import SYSTEM_PROMPT, Sample

    meta = {"leaf": leaf.name, "leaf_type": "knowledge", "branch": "knowledge", "task": task}
    return [Sample(f"{task}-{i}", [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": q},
                                   {"role": "assistant", "content": a}], dict(meta))
            for i, (q, a) in enumerate(pairs)]


def datasets(args: argparse.Namespace) -> tuple[dict[str, list[Any]], list[str]]:
    """Training samples of each asked-for data set, and notes on the ones skipped."""
    from graftlm.artifacts import read_manifest
    from graftlm.config.train import MixConfig
    from graftlm.mix import (
        build_phases,
        document_samples,
        held_out_groups,
        read_chunks,
        read_samples,
        trainable_chunks,
    )

    leaf, chunks = leaf_and_chunks(args.chunk_tokens)
    documents = document_samples(chunks)
    out: dict[str, list[Any]] = {}
    notes: list[str] = []
    for name in args.rows:
        if name == "baseline":
            seeds = [(qa.question, qa.answer) for seed in leaf.knowledge_seeds for qa in seed.qas]
            out[name] = (qa_samples(leaf, seeds, "seed") + documents) * args.repeats
        elif name == "ceiling":
            written = read_qa_file(args.handwritten, ("question", "answer", "fact"))
            out[name] = (qa_samples(leaf, [(r["question"], r["answer"]) for r in written], "handwritten")
                         + documents * args.repeats)
        elif args.pipeline_dir is None:
            notes.append(f"{name}: skipped (pass --pipeline-dir, a `graft generate` folder of examples/taxonomy)")
        else:
            folder = args.old_pipeline_dir if name == "pipeline-old" and args.old_pipeline_dir else args.pipeline_dir
            own = [s for s in read_samples(folder / "train.jsonl") if s.metadata.get("leaf") == leaf.name]
            if not own:
                notes.append(f"{name}: skipped ({folder} has no samples of {leaf.name})")
                continue
            if name == "pipeline-old":
                out[name] = own
            else:
                held = held_out_groups(read_manifest(folder))  # chunks held out by the split stay untrained
                generated = document_samples(trainable_chunks(read_chunks(folder), held)) or documents
                cfg = MixConfig(strategy="stacked", document_ratio=args.document_ratio)
                out[name] = build_phases(own, cfg, documents=generated)[0][0].samples
    return out, notes


# -- scoring ------------------------------------------------------------------------------------------------

def recall(answer: str, item: dict[str, Any]) -> float:
    """Fact recall of one exam item: the share of its keywords the answer states (`graftlm.evaluate.facts`)."""
    from graftlm.evaluate.facts import fact_recall

    return fact_recall(answer, str(item.get("answer", "")), question=str(item["question"]),
                       keywords=list(item["keywords"])).score


def scored(said: list[str], exam: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean fact recall of answers to the exam, the count of fully answered items, and the answers."""
    from graftlm.evaluate.stats import estimate

    scores = [recall(a, it) for a, it in zip(said, exam, strict=True)]
    ci = estimate(scores, clusters=[it["context"] for it in exam]).ci  # items of one passage resampled together
    return {"recall": sum(scores) / len(scores), "full": sum(1 for x in scores if x == 1.0), "ci": ci,
            "answers": [{"question": it["question"], "answer": a, "recall": x}
                        for it, a, x in zip(exam, said, scores, strict=True)]}


def row_scores(closed: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The exam columns of a row from its closed-book answers and the base's."""
    gap = base["open"]["recall"] - base["closed"]["recall"]
    return {"closed_base": base["closed"]["recall"], "closed_trained": closed["recall"],
            "closed_ci": closed.get("ci"),
            "open_base": base["open"]["recall"], "full_base": base["closed"]["full"], "full_trained": closed["full"],
            "gap_closed": (closed["recall"] - base["closed"]["recall"]) / gap if gap > 0 else None,
            "answers": closed["answers"]}


def rescored(answers: list[dict[str, Any]], exam: list[dict[str, Any]]) -> dict[str, Any]:
    """Stored answers scored again with the current recall function (finished rows stay comparable)."""
    return scored([a["answer"] for a in answers], exam)


def exam_messages(item: dict[str, Any], open_book: bool) -> list[dict[str, str]]:
    from graftlm.records import SYSTEM_PROMPT

    question = str(item["question"]).strip()
    user = f"{str(item['context']).strip()}\n\n{question}" if open_book else question
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def answers(folder: Path, prompts: list[list[dict[str, str]]], max_new_tokens: int, desc: str,
            device: str = "cpu") -> list[str]:
    """Greedy answers of the model in `folder`, batched by the local teacher."""
    from graftlm.evaluate.answers import ask, gather_limited
    from graftlm.models import load_model
    from graftlm.teacher.base import SamplingOptions
    from graftlm.teacher.local import LocalTeacher

    model, tok = load_model(str(folder), device=device, dtype="float32")
    teacher = LocalTeacher(model, tok, model_id=folder.name, max_batch=len(prompts))
    opts = SamplingOptions(temperature=0.0, max_tokens=max_new_tokens)

    async def run() -> list[str]:
        try:
            return await gather_limited([partial(ask, teacher, m, opts) for m in prompts], len(prompts), desc)
        finally:
            await teacher.aclose()

    return asyncio.run(run())


def exam_score(folder: Path, exam: list[dict[str, Any]], open_book: bool, max_new_tokens: int,
               device: str = "cpu") -> dict[str, Any]:
    """The exam answered by the model in `folder`, scored (`scored`)."""
    said = answers(folder, [exam_messages(it, open_book) for it in exam], max_new_tokens,
                   "open-book" if open_book else "closed-book", device)
    return scored(said, exam)


def perplexities(base: Path, trained: Path, device: str = "cpu") -> tuple[float, float]:
    """Perplexity of the base and the trained model on the evaluation's general conversations."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from graftlm.evaluate.retention import drift

    tok = AutoTokenizer.from_pretrained(str(base))
    m_base = AutoModelForCausalLM.from_pretrained(str(base)).eval().to(device)
    m_trained = AutoModelForCausalLM.from_pretrained(str(trained)).eval().to(device)
    rows = drift((m_base, tok), (m_trained, tok))
    return (math.exp(sum(r["nll_base"] for r in rows) / len(rows)),
            math.exp(sum(r["nll_trained"] for r in rows) / len(rows)))


# -- one row ------------------------------------------------------------------------------------------------

def train_config(args: argparse.Namespace, student: Path, variant: dict[str, Any]) -> Any:
    from graftlm.config.train import TrainConfig

    base = {"student": str(student), "epochs": args.epochs, "batch_size": 4, "learning_rate": args.lr,
            "warmup_steps": 2, "schedule": "constant", "max_seq_len": 512, "max_tokens_per_row": 1024,
            "save_epoch_end": False, "num_threads": args.threads, "device": args.device}
    return TrainConfig.model_validate({**base, **variant})


def run_row(name: str, samples: list[Any], cfg: Any, student: Path, args: argparse.Namespace,
            exam: list[dict[str, Any]], base: dict[str, Any], facts: int) -> dict[str, Any]:
    from graftlm.artifacts import hash_obj
    from graftlm.train.distributed import Dist
    from graftlm.train.loop import PhaseSpec, train_phase

    out = args.out / "train" / name.replace("/", "_")
    spec = PhaseSpec(name="stacked", kind="knowledge", samples=samples, start_model=student, out=out,
                     input_hash=hash_obj([[s.to_json() for s in samples], cfg.model_dump(mode="json")]))
    start = time.perf_counter()
    manifest = train_phase(spec, cfg, Dist(device="cuda:0" if args.device == "cuda" else "cpu"))
    seconds = time.perf_counter() - start
    trained = Path(manifest["selected"])
    closed = exam_score(trained, exam, False, args.max_new_tokens, args.device)
    ppl_base, ppl_trained = perplexities(student, trained, args.device)
    if not args.keep_models:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return {
        "row": name, "samples": len(samples), "samples_per_fact": len(samples) / facts, "epochs": cfg.epochs,
        "items": len(exam), **row_scores(closed, base),
        "ppl_base": ppl_base, "ppl_trained": ppl_trained, "drift": ppl_trained / ppl_base - 1,
        "train_s": seconds, "config": {k: v for k, v in cfg.model_dump(mode="json").items()
                                       if k in ("learning_rate", "epochs", "kl_to_base", "decay_to_base")},
    }


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _interval(ci: Any) -> str:
    return "-" if not ci else f"{ci[0]:.2f}-{ci[1]:.2f}"


def table(results: list[dict[str, Any]], notes: list[str]) -> str:
    head = (f"{'row':<28}{'samples':>8}{'/fact':>7}{'closed base':>13}{'closed trained':>16}{'95% CI':>14}{'open base':>11}"
            f"{'gap closed':>12}{'ppl base':>10}{'ppl trained':>13}{'drift':>8}{'train s':>9}")
    lines = [head]
    for r in results:
        lines.append(f"{r['row']:<28}{r['samples']:>8}{r['samples_per_fact']:>7.1f}"
                     f"{fmt(r['closed_base']):>8} ({r['full_base']:>2}){fmt(r['closed_trained']):>11} ({r['full_trained']:>2})"
                     f"{_interval(r.get('closed_ci')):>14}"
                     f"{fmt(r['open_base']):>11}{fmt(r['gap_closed'], '.0%'):>12}{r['ppl_base']:>10.2f}"
                     f"{r['ppl_trained']:>13.2f}{r['drift']:>+8.0%}{r['train_s']:>9.0f}")
    lines.extend(f"note: {n}" for n in notes)
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-knowledge")
    ap.add_argument("--student", default="default", help="the model trained in every row (default: SmolLM2-135M)")
    ap.add_argument("--rows", default="baseline,ceiling", help=f"comma-separated data sets of {', '.join(ROWS)}")
    ap.add_argument("--variants", default='{"plain": {}}',
                    help="JSON object: variant name -> train config overrides, e.g. {\"kl1\": {\"kl_to_base\": 1.0}}")
    ap.add_argument("--pipeline-dir", type=Path, default=None, help="a `graft generate` folder of examples/taxonomy")
    ap.add_argument("--old-pipeline-dir", type=Path, default=None,
                    help="the pipeline-old row's `graft generate` folder, when it is not --pipeline-dir (e.g. one made "
                         "with generate.facts=off)")
    ap.add_argument("--document-ratio", type=float, default=1.0, help="mix.document_ratio of the pipeline-new row")
    ap.add_argument("--repeats", type=int, default=3, help="copies of the baseline's and ceiling's data")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--chunk-tokens", type=int, default=250, help="document chunk size (cpu-demo's)")
    ap.add_argument("--exam", type=Path, default=EXAM)
    ap.add_argument("--handwritten", type=Path, default=HANDWRITTEN)
    ap.add_argument("--exam-limit", type=int, default=None, help="score only the first N exam items (smoke tests)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train and evaluate")
    ap.add_argument("--keep-models", action="store_true", help="keep each row's trained checkpoint")
    ap.add_argument("--finished-only", action="store_true",
                    help="print the table of the rows already finished in --out; train nothing")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        ap.error(f"unknown row {unknown[0]!r}; use {', '.join(ROWS)}")
    try:
        args.variants = json.loads(args.variants)
    except json.JSONDecodeError as e:
        ap.error(f"--variants is not valid JSON: {e.msg}")
    if not isinstance(args.variants, dict) or not all(isinstance(v, dict) for v in args.variants.values()):
        ap.error("--variants must be a JSON object of objects, e.g. {\"plain\": {}}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    import torch
    from pydantic import ValidationError

    from graftlm.artifacts import hash_obj
    from graftlm.errors import GraftError
    from graftlm.models import materialize, resolve

    torch.set_num_threads(args.threads)
    try:
        exam = read_qa_file(args.exam, ("question", "keywords", "context"))[:args.exam_limit]
        facts = len({r["fact"] for r in read_qa_file(args.handwritten, ("question", "answer", "fact"))})
        data, notes = datasets(args)
        configs = {v: train_config(args, Path("."), over) for v, over in args.variants.items()}
    except (BenchInputError, GraftError, ValidationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    student = materialize(resolve(args.student))
    args.out.mkdir(parents=True, exist_ok=True)

    base_file = args.out / "base.json"
    base: dict[str, Any] | None = json.loads(base_file.read_text()) if base_file.is_file() else None
    stale = base is None or base.get("exam") != [it["question"] for it in exam] or base.get("student") != str(student)
    if stale and args.finished_only:
        print(f"error: {args.out} has no finished rows for this exam and student", file=sys.stderr)
        return 1
    if base is None or stale:
        log.info("scoring the base model closed-book and open-book on %d exam items", len(exam))
        base = {"student": str(student), "exam": [it["question"] for it in exam],
                "closed": exam_score(student, exam, False, args.max_new_tokens, args.device),
                "open": exam_score(student, exam, True, args.max_new_tokens, args.device)}
        base_file.write_text(json.dumps(base, indent=1))
    base = {**base, "closed": rescored(base["closed"]["answers"], exam), "open": rescored(base["open"]["answers"], exam)}
    log.info("base: closed-book %.2f, open-book %.2f", base["closed"]["recall"], base["open"]["recall"])

    results = []
    for data_name, samples in data.items():
        for variant, over in args.variants.items():
            name = f"{data_name}/{variant}"
            cfg = configs[variant].model_copy(update={"student": str(student)})
            done = args.out / "rows" / f"{name.replace('/', '_')}.json"
            key = {"samples": len(samples), "data": hash_obj([s.to_json() for s in samples]),
                   "config": cfg.model_dump(mode="json"), "exam": base["exam"]}
            if done.is_file() and json.loads(done.read_text()).get("key") == key:
                row = json.loads(done.read_text())
                results.append({**row, **row_scores(rescored(row["answers"], exam), base)})
                log.info("row %s: done before", name)
                continue
            if args.finished_only:
                notes.append(f"{name}: not finished yet")
                continue
            log.info("row %s: training on %d samples (%s)", name, len(samples), over or "no forgetting control")
            row = run_row(name, samples, cfg, student, args, exam, base, facts)
            row["key"] = key
            done.parent.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps(row, indent=1))
            results.append(row)
            log.info("row %s: closed-book %.2f, drift %+.0f%%, %.0f s", name, row["closed_trained"],
                     100 * row["drift"], row["train_s"])
    print(table(results, notes))
    if args.json is not None:
        args.json.write_text(json.dumps({"base": {k: base[k] for k in ("closed", "open")}, "results": results,
                                         "notes": notes, "facts": facts}, indent=1))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
