"""`graft taxonomy validate|diff|show|draft`: check a taxonomy, list the leaves changed against git, show sizes,
draft a new leaf."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from graftlm.errors import Location


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("taxonomy", help="validate, diff and show an InstructLab taxonomy")
    tsub = p.add_subparsers(dest="taxonomy_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    v = tsub.add_parser("validate", help="check qna.yaml files by InstructLab's rules (exit 1 if any is invalid)")
    v.add_argument("paths", nargs="+", metavar="PATH", help="a taxonomy root, leaf folders or qna.yaml files")
    v.add_argument("--json", action="store_true", help="print one JSON array, one object per file")
    v.add_argument("--strict", action="store_true",
                   help="InstructLab's exact verdict: lint with its yamllint rules, whose errors (such as "
                        "trailing spaces) make a file invalid instead of giving a warning")
    v.set_defaults(func=_validate)

    d = tsub.add_parser("diff", help="list and validate the leaves changed against a git base")
    d.add_argument("taxonomy", nargs="?", default=".", help="taxonomy root, a git checkout (default: .)")
    d.add_argument("--base", default="origin/main",
                   help="git ref to compare with (default origin/main, as InstructLab); `empty` = every leaf")
    d.add_argument("--json", action="store_true", help="print JSON instead of text")
    d.set_defaults(func=_diff)

    dr = tsub.add_parser(
        "draft", help="write a first qna.yaml for a knowledge leaf from documents, or a skill leaf from examples",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Knowledge: split the documents by their headings, pick five seed contexts spread over them "
        "(whole sentences, under InstructLab's word limits), let the teacher draft three questions and answers per "
        "context (kept only when grounded in it), and pin the documents' git repository and commit (a local "
        "repository is created beside the taxonomy when they are in none).\nSkill (--skill): the examples given, "
        "and more drafted by the teacher up to five.\nWhat the teacher could not fill is a `FILL IN:` line that "
        "fails `graft taxonomy validate` until you replace it. Exit 0: the draft validates; 1: placeholders left.",
        epilog="examples:\n"
        "  graft taxonomy draft docs/vescary.md docs/economy.pdf --leaf knowledge/geography/islands/vescary \\\n"
        "      --out my-taxonomy --teacher http://gpu:8000/v1\n"
        "  graft taxonomy draft --skill \"Turn a blunt command into a polite request\" \\\n"
        "      --leaf compositional_skills/writing/polite_requests --out my-taxonomy \\\n"
        "      --example \"Close the door. => Could you please close the door?\"\n"
        "  graft taxonomy validate my-taxonomy")
    dr.add_argument("documents", nargs="*", type=Path, metavar="DOCUMENT",
                    help="Markdown, PDF or text documents (knowledge leaves)")
    dr.add_argument("--leaf", required=True, help="leaf path, e.g. knowledge/geography/islands/vescary or "
                    "compositional_skills/writing/polite_requests")
    dr.add_argument("--out", type=Path, default=Path("."), metavar="TAXONOMY",
                    help="taxonomy root to write the leaf into (default: .)")
    dr.add_argument("--teacher", default="default",
                    help="`default` (embedded SmolLM2-135M), a model folder or .gguf, `fake`, or an http(s)://host:port/v1 URL")
    dr.add_argument("--skill", metavar="TASK", help="draft a skill leaf for this task description")
    dr.add_argument("--example", action="append", default=[], metavar="'QUESTION => ANSWER'",
                    help="a skill example (repeatable)")
    dr.add_argument("--examples", type=Path, metavar="FILE",
                    help="skill examples: YAML list of {question, answer}, or Question:/Answer: lines")
    dr.add_argument("--domain", help="knowledge domain (default: from the leaf path, e.g. Geography)")
    dr.add_argument("--created-by", help="created_by (default: your user name)")
    dr.add_argument("--force", action="store_true", help="replace an existing qna.yaml")
    dr.set_defaults(func=_draft)

    s = tsub.add_parser("show", help="print the tree with each leaf's type, seeds and word counts vs guidance, "
                                     "and the invalid files with their errors (exit 1 if any)")
    s.add_argument("taxonomy", nargs="?", default=".", help="taxonomy root (default: .)")
    s.add_argument("--json", action="store_true", help="print one JSON object per leaf, as an array (invalid files with "
                                                            "`valid: false` and their errors)")
    s.set_defaults(func=_show)


def format_report(report: Any) -> list[str]:
    """`file:line:col: error: field: message` lines for one file's errors and warnings."""
    lines = []
    for kind, issues in (("error", report.errors), ("warning", report.warnings)):
        for i in issues:
            loc = Location(str(report.path), i.line, i.column)
            field = f"{i.field}: " if i.field else ""
            lines.append(f"{loc}: {kind}: {field}{i.message}")
    return lines


def _print_reports(reports: list[Any]) -> None:
    for r in reports:
        for line in format_report(r):
            print(line)
    bad = sum(1 for r in reports if not r.valid)
    warned = sum(1 for r in reports if r.warnings)
    print(f"{len(reports)} file(s): {len(reports) - bad} valid, {bad} invalid, {warned} with warnings",
          file=sys.stderr)


def _validate(args: argparse.Namespace) -> int:
    from graftlm.taxonomy.validate import validate_paths

    reports = validate_paths(args.paths, strict=args.strict)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2, ensure_ascii=False))
    else:
        _print_reports(reports)
    return 1 if any(not r.valid for r in reports) else 0


def _diff(args: argparse.Namespace) -> int:
    from graftlm.taxonomy.diff import changed_leaves
    from graftlm.taxonomy.layout import leaf_name
    from graftlm.taxonomy.validate import validate_file

    root = Path(args.taxonomy)
    files = changed_leaves(root, args.base)
    reports = [validate_file(f) for f in files]
    if args.json:
        out = {"base": args.base,
               "leaves": [{"name": leaf_name(r.path, root), **r.to_dict()} for r in reports]}
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        what = "every leaf" if args.base == "empty" else f"changed against {args.base}"
        print(f"{len(files)} {'leaf' if len(files) == 1 else 'leaves'} {what}:")
        for r in reports:
            print(f"  {leaf_name(r.path, root)}  ({'valid' if r.valid else 'INVALID'})")
        _print_reports(reports)
    return 1 if any(not r.valid for r in reports) else 0


def _show(args: argparse.Namespace) -> int:
    from graftlm.taxonomy.layout import leaf_files
    from graftlm.taxonomy.load import leaf_from_report
    from graftlm.taxonomy.show import invalid_entry, leaf_stats, render_tree
    from graftlm.taxonomy.validate import validate_file

    root = Path(args.taxonomy)
    if not root.is_dir():
        from graftlm.errors import TaxonomyError

        raise TaxonomyError(f"taxonomy folder not found: {root}", hint="pass the root of a taxonomy")
    reports = [validate_file(f) for f in leaf_files(root)]
    stats = [leaf_stats(leaf_from_report(r, root)) for r in reports if r.valid]
    invalid = [r for r in reports if not r.valid]
    if args.json:
        entries = [s.to_dict() for s in stats] + [invalid_entry(r, root) for r in invalid]
        print(json.dumps(entries, indent=2, ensure_ascii=False))
    else:
        print(render_tree(stats, invalid, root))
    return 1 if invalid else 0


def _draft(args: argparse.Namespace) -> int:
    from graftlm.errors import InputError
    from graftlm.taxonomy.draft import draft_knowledge, draft_skill, parse_example, read_examples
    from graftlm.taxonomy.validate import validate_file

    if args.skill is not None:
        if args.documents:
            raise InputError("--skill drafts a skill leaf from examples, not from documents",
                             hint="drop the documents, or drop --skill to draft a knowledge leaf")
        examples = [parse_example(e) for e in args.example]
        if args.examples:
            examples += read_examples(args.examples)
        result = draft_skill(args.skill, examples, args.leaf, args.out, teacher=args.teacher,
                             created_by=args.created_by, force=args.force)
    else:
        if not args.documents:
            raise InputError("no documents given", hint="pass Markdown or PDF files, or --skill TASK for a skill leaf")
        result = draft_knowledge(args.documents, args.leaf, args.out, teacher=args.teacher, domain=args.domain,
                                 created_by=args.created_by, force=args.force)
    print(f"wrote {result.path} ({result.teacher_calls} teacher calls)")
    for note in result.notes:
        print(f"note: {note}")
    report = validate_file(result.path)
    if report.valid:
        print("the draft validates; review it, then: graft run TAXONOMY --recipe RECIPE --out RUN_DIR")
        return 0
    _print_reports([report])
    print(f"{result.placeholders} placeholder(s) left: replace each FILL IN: value, then run "
          f"`graft taxonomy validate {result.path}`", file=sys.stderr)
    return 1
