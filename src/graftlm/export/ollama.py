"""The files that make an exported GGUF runnable: an Ollama `Modelfile` and the README lines with the
`ollama create` and `llama-server -m` commands.

Ollama's TEMPLATE is a Go template, not the Jinja chat template in the GGUF metadata, so it is written for
the chat formats graftlm's students use (ChatML as SmolLM2 and Qwen2, Llama 3 headers, Granite roles,
Mistral [INST]); for any other format the Modelfile has no TEMPLATE and Ollama derives one from the
GGUF's `tokenizer.chat_template`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from graftlm.records import SYSTEM_PROMPT


@dataclass(frozen=True)
class ChatFormat:
    """One chat format: how a chat template is recognised, Ollama's template for it, its stop tokens."""

    name: str
    marker: str
    template: str
    stops: tuple[str, ...]


CHAT_FORMATS = (
    ChatFormat("chatml", "<|im_start|>",
               "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
               "<|im_start|>assistant\n",
               ("<|im_end|>", "<|im_start|>")),
    ChatFormat("llama3", "<|start_header_id|>",
               "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
               "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
               ("<|eot_id|>", "<|start_header_id|>")),
    ChatFormat("granite", "<|start_of_role|>",
               "{{- range .Messages }}<|start_of_role|>{{ .Role }}<|end_of_role|>{{ .Content }}<|end_of_text|>\n"
               "{{ end }}<|start_of_role|>assistant<|end_of_role|>",
               ("<|end_of_text|>", "<|start_of_role|>")),
    ChatFormat("mistral", "[INST]",
               "{{- if .System }}[INST] {{ .System }}\n\n{{ .Prompt }} [/INST]{{ else }}[INST] {{ .Prompt }} [/INST]"
               "{{ end }}",
               ("[INST]", "[/INST]")),
)
"""Chat formats with an Ollama template, tried in order on the model's chat template."""


def chat_format(chat_template: str) -> ChatFormat | None:
    """The known chat format a Jinja chat template writes, or None."""
    return next((f for f in CHAT_FORMATS if f.marker in chat_template), None)


def _quoted(text: str) -> str:
    """A Modelfile triple-quoted string (it has no escapes, so a triple quote inside is broken up)."""
    return '"""' + text.replace('"""', '" " "') + '"""'


def modelfile(gguf_name: str, chat_template: str, eos_token: str | None, system_prompt: str) -> str:
    """The text of an Ollama Modelfile for the GGUF file `gguf_name` next to it."""
    fmt = chat_format(chat_template)
    lines = ["# Ollama: ollama create NAME -f Modelfile && ollama run NAME", f"FROM ./{gguf_name}", ""]
    if fmt is not None:
        lines += [f"# chat format: {fmt.name}", f"TEMPLATE {_quoted(fmt.template)}", ""]
    else:
        lines += ["# chat format not recognised: Ollama takes the template from the GGUF's tokenizer.chat_template", ""]
    stops = list(fmt.stops if fmt else ())
    if eos_token and eos_token not in stops:
        stops.append(eos_token)
    lines += [f"PARAMETER stop {json.dumps(s)}" for s in stops]
    lines += ["", "# the system prompt the model was trained with", f"SYSTEM {_quoted(system_prompt)}", ""]
    return "\n".join(lines)


def run_commands(name: str, gguf_name: str) -> str:
    """README lines (Markdown) with the `ollama create` and `llama-server -m` commands for the exported file."""
    return "\n".join([
        "## Run it with Ollama or llama.cpp", "",
        "```sh",
        f"ollama create {name} -f Modelfile && ollama run {name}",
        f"llama-server -m {gguf_name} --port 8080      # OpenAI-compatible: http://localhost:8080/v1",
        "```", ""])


def trained_system_prompt(run_dir: Path) -> str:
    """The system message of the run's training data (the first sample of `generate/train.jsonl`), or
    graftlm's own when the run holds none."""
    path = Path(run_dir) / "generate" / "train.jsonl"
    try:
        with path.open(encoding="utf-8") as f:
            first = json.loads(f.readline() or "{}")
    except (OSError, json.JSONDecodeError):
        return SYSTEM_PROMPT
    messages = first.get("messages") if isinstance(first, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[0], dict) \
            and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        return str(messages[0]["content"])
    return SYSTEM_PROMPT
