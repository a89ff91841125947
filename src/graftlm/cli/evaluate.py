"""`graft eval` and `graft report`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from graftlm.cli.common import format_table, recipe_from_args


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "eval", help="did the model learn the taxonomy? score trained vs base per leaf, with intervals",
        description="Ask MODEL (and --base) every held-out question of a generate folder and/or of your own exam "
                    "(--questions), judge the answers, score knowledge judge-free too (fact recall, token F1, "
                    "ROUGE-L, multiple choice), let --base answer knowledge questions open-book for the bound "
                    "(share of the gap closed), measure retention (MT-Bench, drift), and write OUT/scores.json, "
                    "OUT/answers.jsonl and OUT/manifest.json. Answers are cached in OUT/cache: rerun the same "
                    "command to resume.")
    e.add_argument("model", help="the trained model: a Hugging Face folder, a .gguf file, `default`, or an http(s) URL")
    e.add_argument("--data", type=Path, help="output folder of `graft generate` (holds eval.jsonl)")
    e.add_argument("--questions", type=Path, metavar="EXAM.jsonl",
                   help='your own exam: one {"question", "answer"} per line, optional "keywords", "context", '
                        '"leaf"; overrides eval.questions')
    e.add_argument("--documents", type=Path, metavar="PATH",
                   help="document file or folder for the open-book passages of exam questions without a "
                        "context; overrides eval.documents")
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.add_argument("--base", help="the model before training, for before/after comparisons and drift")
    e.add_argument("--judge", help="the judge: `default`, a model folder, `fake`, or http(s) URL(s); overrides judge.model "
                                   "(default: the recipe's judge, else its teacher)")
    e.add_argument("--recipe", help="recipe YAML; its `eval`, `judge` and `teacher` sections are used")
    e.add_argument("--no-judge", action="store_true", help="judge-free only: token F1, ROUGE-L, multiple choice, drift")
    e.add_argument("--max-items", type=int, help="override eval.max_items_per_leaf")
    e.add_argument("--mt-bench", type=int, metavar="N", help="override eval.mt_bench_questions (0 skips MT-Bench)")
    e.set_defaults(func=_eval)

    r = sub.add_parser("report", help="write report.md and a self-contained report.html for a run folder",
                       description="Read RUN_DIR/generate, RUN_DIR/train and RUN_DIR/eval (each may be missing) and "
                                   "write report.md and report.html with plots (default folder: RUN_DIR/report).")
    r.add_argument("run_dir", type=Path, help="a `graft run` output folder")
    r.add_argument("--out", type=Path, help="output folder (default RUN_DIR/report)")
    r.set_defaults(func=_report)


def _eval(args: argparse.Namespace) -> int:
    from graftlm.artifacts import read_json
    from graftlm.evaluate.run import run_eval

    recipe = recipe_from_args(args, {
        "judge.model": args.judge, "eval.use_judge": False if args.no_judge else None,
        "eval.max_items_per_leaf": args.max_items, "eval.mt_bench_questions": args.mt_bench,
    })
    if args.data is None and args.questions is None and not recipe.eval.questions:
        from graftlm.errors import ConfigError

        raise ConfigError("nothing to evaluate: give --data (a `graft generate` folder), --questions EXAM.jsonl, "
                          "or both")
    out = run_eval(args.model, args.data, args.out, recipe, base_model=args.base, questions=args.questions,
                   documents=args.documents)
    scores = read_json(out / "scores.json")
    print(format_table(["leaf", "answer", "metric", "n", "base", "trained", "diff", "p (Holm)", "gap closed"],
                       summary_rows(scores)))
    for name, overall in (("held-out knowledge", scores.get("overall", {}).get("knowledge") or {}),
                          ("exam", (scores.get("exam") or {}).get("overall") or {})):
        gap = (overall.get("fact_recall") or {}).get("gap_closed")
        if gap:
            print(f"share of the open-book gap closed ({name}, fact recall {_num(gap['base'])} -> "
                  f"{_num(gap['trained'])}, open book {_num(gap['open_book'])}, n = {gap['n']}): {_gap(gap)}")
    for note in scores.get("skipped", []):
        print(f"skipped: {note}")
    print(f"scores written to {out / 'scores.json'}")
    return 0


def _num(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def summary_rows(scores: dict[str, Any]) -> list[list[str]]:
    """One row per leaf (its deciding metric) and per retention measure."""
    rows = []
    exam = scores.get("exam") or {}
    for prefix, leaves in (("", scores.get("leaves", {})), ("exam: ", exam.get("leaves", {}))):
        for leaf, block in leaves.items():
            v = block.get("verdict", {})
            entry = block.get("evaluators", {}).get(v.get("metric") or "", {})
            rows.append(_row(prefix + leaf, v.get("answer", "-"), v.get("metric") or "-", entry,
                             v.get("gap_closed")))
    ret = scores.get("retention", {})
    if "mt_bench" in ret:
        rows.append(_row("retention: MT-Bench", ret["mt_bench"].get("diff", {}).get("verdict", "-"), "judge_score",
                         ret["mt_bench"]))
    if "drift" in ret:
        rows.append(_row("retention: drift", ret["drift"]["nll"].get("diff", {}).get("verdict", "-"), "nll",
                         ret["drift"]["nll"]))
    return rows


def _row(name: str, answer: str, metric: str, entry: dict[str, Any], gap: dict[str, Any] | None = None) -> list[str]:
    trained, base, diff = entry.get("trained") or {}, entry.get("base") or {}, entry.get("diff") or {}
    p = diff.get("p_adjusted", diff.get("p_value"))
    return [name, answer, metric, str(trained.get("n", "-")), _num(base.get("mean")), _num(trained.get("mean")),
            _num(diff.get("diff")), _num(p), _gap(gap)]


def _gap(gap: dict[str, Any] | None) -> str:
    """`42% [10%, 80%]` of the open-book gap closed, `n/a` when there was no gap, `-` when not measured."""
    if not gap:
        return "-"
    if gap.get("share") is None:
        return "n/a"
    ci = gap.get("ci")
    return f"{100 * gap['share']:.0f}%" + (f" [{100 * ci[0]:.0f}%, {100 * ci[1]:.0f}%]" if ci else "")


def _report(args: argparse.Namespace) -> int:
    from graftlm.report import run_report

    out = run_report(args.run_dir, args.out)
    print(f"report written to {out / 'report.html'} and {out / 'report.md'}")
    return 0
