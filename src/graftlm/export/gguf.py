"""A Hugging Face model folder of the Llama family as one GGUF file (llama.cpp, Ollama, LM Studio).

`write_gguf(model_dir, out, quant)` reads `config.json`, the safetensors weights and `tokenizer.json`,
and writes the file with the `gguf` package: its writer, its tensor-name maps (`model.layers.0.self_attn.q_proj`
-> `blk.0.attn_q`) and its quantisers. Supported: Llama (SmolLM2, Llama 1-3 without long-context rope
scaling), Mistral (written as `llama`, as llama.cpp does), Granite (`granite`, with its four multipliers)
and Qwen2 (`qwen2`, with attention biases). Anything else is a `ModelError` naming the architecture.

llama.cpp computes rotary embeddings on interleaved pairs of each head's dimensions, Hugging Face on its
two halves: for `llama` and `granite` the Q and K projections are permuted (`permute_qk`) so that the file
gives the same attention scores; `qwen2` uses the halves layout in llama.cpp too and is written unchanged.
The tokenizer goes in as llama.cpp's `gpt2` (byte-level BPE) model: tokens in id order, token types,
merges, special token ids and the chat template.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graftlm.errors import InputError, ModelError

QUANTS = ("f16", "q8_0")
"""The `--quant` choices: f16 (half precision, lossless for bf16/f16 models) and q8_0 (8-bit blocks of 32)."""


@dataclass(frozen=True)
class ArchSpec:
    """How one Hugging Face architecture is written: the GGUF architecture and whether Q/K are permuted."""

    gguf_arch: str
    permute_qk: bool


ARCHITECTURES: dict[str, ArchSpec] = {
    "llama": ArchSpec("llama", True),
    "mistral": ArchSpec("llama", True),
    "granite": ArchSpec("granite", True),
    "qwen2": ArchSpec("qwen2", False),
}
"""Hugging Face `model_type` -> how it is written."""

_ROPE_TYPES = ("default", "linear")


def arch_spec(config: dict[str, Any], where: Path) -> ArchSpec:
    """The ArchSpec of a model config, or a ModelError naming the architecture and what to do instead."""
    model_type = str(config.get("model_type") or "")
    spec = ARCHITECTURES.get(model_type)
    names = ", ".join(config.get("architectures") or []) or "unknown"
    if spec is None:
        raise ModelError(
            f"{where}: cannot write GGUF for architecture {names} (model_type {model_type or 'missing'}); "
            f"graftlm writes {', '.join(sorted(ARCHITECTURES))}",
            hint="export with --format hf and convert the folder with llama.cpp's convert_hf_to_gguf.py")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = str(rope.get("rope_type") or rope.get("type") or "default")
    if rope_type not in _ROPE_TYPES:
        raise ModelError(f"{where}: {names} uses rope scaling `{rope_type}`, which graftlm's GGUF writer does not "
                         f"write (it writes {', '.join(_ROPE_TYPES)})",
                         hint="export with --format hf and convert with llama.cpp's convert_hf_to_gguf.py")
    return spec


def permute_qk(weights: Any, n_head: int) -> Any:
    """Reorder the rows of a Q or K projection from Hugging Face's rotary layout (two halves per head) to
    llama.cpp's (interleaved pairs); the same permutation as llama.cpp's `convert_hf_to_gguf.py`.
    Works on weights (rows x columns) and on biases (rows)."""
    rows = weights.shape[0]
    return (weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def pre_tokenizer_name(tokenizer: dict[str, Any]) -> str:
    """llama.cpp's name for the pre-tokenizer of a `tokenizer.json` (`tokenizer.ggml.pre`).

    Byte-level alone is GPT-2's regex (`gpt-2`); digits split one by one before it is SmolLM's (`smollm`);
    a Split by Llama 3's or Qwen2's regex before a regex-free byte-level step is `llama-bpe` or `qwen2`.
    Anything else is `default` (llama.cpp's own regex)."""
    pre = tokenizer.get("pre_tokenizer") or {}
    steps: list[dict[str, Any]] = list(pre.get("pretokenizers") or []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    if kinds == ["Split", "ByteLevel"]:
        regex = str((steps[0].get("pattern") or {}).get("Regex") or "")
        if r"\p{N}{1,3}" in regex:
            return "llama-bpe"
        if r"\p{N}|" in regex or r"\p{N}| ?" in regex:
            return "qwen2"
    return "default"


def bpe_vocab(tokenizer: dict[str, Any], vocab_size: int, where: Path) -> tuple[list[str], list[int]]:
    """Tokens in id order and their llama.cpp token types from a byte-level BPE `tokenizer.json`, padded
    to the model's `vocab_size` with unused `[PAD<id>]` tokens as llama.cpp's converter does."""
    from gguf import TokenType

    model = tokenizer.get("model") or {}
    decoder = tokenizer.get("decoder") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or decoder.get("type") != "ByteLevel":
        raise ModelError(f"{where}: the tokenizer is not a byte-level BPE (model {model.get('type')}, decoder "
                         f"{decoder.get('type')}); graftlm writes GPT-2-style BPE tokenizers to GGUF",
                         hint="export with --format hf and convert with llama.cpp's convert_hf_to_gguf.py")
    by_id: dict[int, str] = {int(i): str(t) for t, i in (model.get("vocab") or {}).items()}
    types = dict.fromkeys(by_id, int(TokenType.NORMAL))
    for added in tokenizer.get("added_tokens") or []:
        tid = int(added["id"])
        by_id[tid] = str(added["content"])
        types[tid] = int(TokenType.CONTROL if added.get("special") else TokenType.USER_DEFINED)
    size = max(vocab_size, max(by_id, default=-1) + 1)
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(size)]
    return tokens, [types.get(i, int(TokenType.UNUSED)) for i in range(size)]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"{path} is missing", hint="pass a Hugging Face model folder (config.json, "
                         "*.safetensors, tokenizer.json), e.g. one written by `graft export --format hf`") from e
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path} cannot be read as JSON: {e}") from e
    if not isinstance(data, dict):
        raise InputError(f"{path} is not a JSON object")
    return data


def _weight_files(model_dir: Path) -> list[Path]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise InputError(f"{model_dir} holds no *.safetensors weights",
                         hint="pass a folder saved by transformers' save_pretrained (safetensors)")
    return files


def _weights(files: list[Path]) -> Iterator[tuple[str, Any]]:
    """(name, float32 numpy array) for every tensor of the safetensors files, read one at a time (the
    writer holds only the converted tensors: memory about the size of the GGUF file)."""
    import torch
    from safetensors import safe_open

    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():  # noqa: SIM118 - safe_open is not a mapping
                yield name, st.get_tensor(name).to(torch.float32).numpy()


def _tensor_count(files: list[Path]) -> int:
    from safetensors import safe_open

    count = 0
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            count += len(list(st.keys()))  # noqa: SIM118
    return count


def _encode(data: Any, quant: str) -> tuple[Any, Any]:
    """The array to write and its GGML type: 1-D tensors (norms, biases) stay F32; matrices are F16, or
    Q8_0 when asked and their rows split into blocks of 32 (else F16, as llama.cpp falls back)."""
    import numpy as np
    from gguf import GGMLQuantizationType, quants

    if data.ndim <= 1:
        return data.astype(np.float32), GGMLQuantizationType.F32
    if quant == "q8_0" and data.shape[-1] % 32 == 0:
        return quants.quantize(data, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
    return data.astype(np.float16), GGMLQuantizationType.F16


def _add_hparams(w: Any, config: dict[str, Any], spec: ArchSpec) -> None:
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    w.add_context_length(int(config.get("max_position_embeddings") or 2048))
    w.add_embedding_length(hidden)
    w.add_block_count(int(config["num_hidden_layers"]))
    w.add_feed_forward_length(int(config["intermediate_size"]))
    w.add_head_count(heads)
    w.add_head_count_kv(int(config.get("num_key_value_heads") or heads))
    w.add_rope_dimension_count(int(config.get("head_dim") or hidden // heads))
    w.add_rope_freq_base(float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0))
    if str(rope.get("rope_type") or rope.get("type") or "default") == "linear":
        from gguf import RopeScalingType

        w.add_rope_scaling_type(RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(rope["factor"]))
    w.add_layer_norm_rms_eps(float(config.get("rms_norm_eps") or 1e-6))
    w.add_vocab_size(int(config["vocab_size"]))
    if spec.gguf_arch == "granite":
        w.add_embedding_scale(float(config.get("embedding_multiplier", 1.0)))
        w.add_residual_scale(float(config.get("residual_multiplier", 1.0)))
        w.add_logit_scale(float(config.get("logits_scaling", 1.0)))
        w.add_attention_scale(float(config.get("attention_multiplier", 1.0)))


def _add_tokenizer(w: Any, model_dir: Path, vocab_size: int) -> None:
    from gguf import SpecialVocab

    tokenizer = _read_json(model_dir / "tokenizer.json")
    tokens, types = bpe_vocab(tokenizer, vocab_size, model_dir / "tokenizer.json")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre_tokenizer_name(tokenizer))
    w.add_token_list(tokens)
    w.add_token_types(types)
    special = SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    if not special.merges:
        raise ModelError(f"{model_dir / 'tokenizer.json'} has no BPE merges", hint="save the tokenizer with "
                         "transformers' save_pretrained (a fast tokenizer)")
    if special.chat_template is None:
        raise ModelError(f"{model_dir} has no chat template (chat_template.jinja or tokenizer_config.json)",
                         hint="the exported model would not know its chat format; set tokenizer.chat_template "
                         "and save the tokenizer again")
    special.add_to_gguf(w, quiet=True)


def write_gguf(model_dir: Path, out: Path, *, quant: str = "f16", name: str | None = None,
               progress: bool = True) -> Path:
    """Write the model in `model_dir` (a Hugging Face folder) to the GGUF file `out` (written to a temporary
    name and renamed, so an interrupted export leaves no partial file)."""
    from gguf import MODEL_ARCH_NAMES, GGMLQuantizationType, GGUFWriter, LlamaFileType, get_tensor_name_map
    from tqdm import tqdm

    model_dir, out = Path(model_dir), Path(out)
    check_quant(quant)
    config = _read_json(model_dir / "config.json")
    spec = arch_spec(config, model_dir / "config.json")
    arch = next(a for a, n in MODEL_ARCH_NAMES.items() if n == spec.gguf_arch)
    n_blocks = int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    names = get_tensor_name_map(arch, n_blocks)
    tied = bool(config.get("tie_word_embeddings", False))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    w = GGUFWriter(str(tmp), spec.gguf_arch)
    try:
        w.add_type("model")
        w.add_name(name or model_dir.resolve().name)
        _add_hparams(w, config, spec)
        w.add_file_type(LlamaFileType.MOSTLY_F16 if quant == "f16" else LlamaFileType.MOSTLY_Q8_0)
        w.add_quantization_version(2)
        _add_tokenizer(w, model_dir, int(config["vocab_size"]))
        files = _weight_files(model_dir)
        bar = tqdm(_weights(files), total=_tensor_count(files), desc=f"gguf {quant}", unit="tensor",
                   disable=not progress or None)
        for hf_name, data in bar:
            if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
                continue
            gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise ModelError(f"{model_dir}: tensor {hf_name} has no GGUF name for {spec.gguf_arch}",
                                 hint="export with --format hf and convert with llama.cpp's convert_hf_to_gguf.py")
            if spec.permute_qk and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
                data = permute_qk(data, heads)
            elif spec.permute_qk and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
                data = permute_qk(data, kv_heads)
            array, qtype = _encode(data, quant)
            if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
                w.add_tensor(gguf_name, array)
            else:
                w.add_tensor(gguf_name, array, raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file(progress=False)
        w.close()
        os.replace(tmp, out)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return out


@dataclass(frozen=True)
class GgufExport:
    """What `export_gguf` wrote: the GGUF file, the Modelfile, and README lines that say how to run them."""

    gguf: Path
    modelfile: Path
    readme: str


def export_gguf(model_dir: Path, to: Path, *, quant: str = "f16", name: str | None = None,
                system_prompt: str | None = None, progress: bool = True) -> GgufExport:
    """Write `<name>.<quant>.gguf` and an Ollama `Modelfile` for the Hugging Face folder `model_dir` into the
    folder `to` (which may be `model_dir` itself: the GGUF goes next to the weights)."""
    from transformers import AutoTokenizer

    from graftlm.export.ollama import modelfile, run_commands
    from graftlm.records import SYSTEM_PROMPT

    model_dir, to = Path(model_dir), Path(to)
    name = name or model_dir.resolve().name
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    template = tok.chat_template if isinstance(tok.chat_template, str) else ""
    gguf = write_gguf(model_dir, to / f"{name}.{quant}.gguf", quant=quant, name=name, progress=progress)
    mf = to / "Modelfile"
    mf.write_text(modelfile(gguf.name, template, tok.eos_token, system_prompt or SYSTEM_PROMPT), encoding="utf-8")
    return GgufExport(gguf, mf, run_commands(name, gguf.name))


def check_quant(quant: str) -> None:
    """Raise an InputError for an unknown quantisation."""
    if quant not in QUANTS:
        raise InputError(f"unknown quantisation {quant!r}", hint=f"use --quant with one of {', '.join(QUANTS)}")


def export_gguf_run(run_dir: Path, to: Path, *, quant: str = "f16", keep_hf: bool = False,
                    force: bool = False) -> Path:
    """`graft export --format gguf` (`hf,gguf` with `keep_hf`): the run's Hugging Face export (model card
    included) in a temporary folder beside `to`, the GGUF and Modelfile written into it, the Hugging Face
    files removed unless `keep_hf`, the README given the run commands; then the folder becomes `to`, so
    an interrupted export leaves no partial folder."""
    from graftlm.artifacts import atomic_dir
    from graftlm.errors import ConfigError
    from graftlm.export.hf import export_hf
    from graftlm.export.ollama import trained_system_prompt

    run_dir, to = Path(run_dir), Path(to)
    check_quant(quant)
    if to.exists() and any(to.iterdir()) and not force:
        raise ConfigError(f"export folder {to} exists and is not empty", hint="pass another --to, or --force to replace it")
    with atomic_dir(to, replace=True) as tmp:
        export_hf(run_dir, tmp)
        done = export_gguf(tmp, tmp, quant=quant, name=to.name, system_prompt=trained_system_prompt(run_dir))
        if not keep_hf:
            for f in tmp.iterdir():
                if f.is_file() and f not in (done.gguf, done.modelfile) and f.name != "README.md":
                    f.unlink()
        with (tmp / "README.md").open("a", encoding="utf-8") as readme:
            readme.write("\n" + done.readme)
    return to
