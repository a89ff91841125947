"""Templates render, and the fake teacher recognises every generation prompt (and only those)."""

from __future__ import annotations

from graftlm.generate import fake_responses
from graftlm.teacher.base import SamplingOptions
from graftlm.templates import TEMPLATES, render, render_text

VARS = {
    "task": "Write polite requests.", "seed_question": "Ask a neighbour to trim a hedge.",
    "seed_answer": "Dear neighbour, ...", "seed_context": "A passage.", "context": "A passage.",
    "question": "Ask a landlord to fix a tap.", "answer": "Dear landlord, ...", "k": 2, "domain": "geo",
    "outline": "A valley.", "examples": [{"context": "ctx", "qas": [{"question": "q?", "answer": "a."}]}],
    "chunk": "The valley is long. The river is wide and cold in winter.",
    "fact": "The Osk River is 60 kilometres long.", "forms": ["a what question with a short answer"],
    "a": "Osk River", "b": "60 km", "instruction": "List the key points of the text.",
}


def test_every_template_renders_and_has_a_fake_handler():
    prefixes = list(fake_responses.HANDLERS)
    for name in TEMPLATES:
        text = render_text(name, **VARS)
        assert "{{" not in text and "{%" not in text
        matching = [p for p in prefixes if text.startswith(p)]
        assert len(matching) == 1, f"{name}: {matching}"
        answer = fake_responses.respond(render(name, **VARS), SamplingOptions(temperature=0.9, n=1), 0)
        assert isinstance(answer, str)


def test_fake_is_deterministic_and_passes_on_other_prompts():
    msgs = render("freeform_questions", **VARS)
    opts = SamplingOptions(temperature=0.9, n=3)
    assert fake_responses.respond(msgs, opts, 1) == fake_responses.respond(msgs, opts, 1)
    assert fake_responses.respond([{"role": "user", "content": "Rate this answer 1..10"}], opts, 0) is None


def test_only_the_leaf_seed_is_in_a_question_prompt():
    text = render_text("freeform_questions", **VARS)
    assert "Ask a neighbour to trim a hedge." in text and "Write 2 new questions" in text


def test_seed_rotation_is_linear_in_chunks():
    from collections import Counter

    from graftlm.generate.knowledge import rotate_examples

    shown = [rotate_examples(5, chunk, 2) for chunk in range(10)]
    assert all(len(s) == 2 and len(set(s)) == 2 for s in shown)  # k distinct seeds per chunk, no more
    assert set(Counter(i for s in shown for i in s).values()) == {4}  # every seed used equally
    assert rotate_examples(3, 0, 5) == [0, 1, 2] and rotate_examples(0, 4, 1) == []
