"""GGUF export: a trained tiny model written to GGUF, loaded back by transformers' own GGUF loader, gives
the source model's logits (f16) or its greedy answers (q8_0); `gguf.GGUFReader` sees the metadata llama.cpp
and Ollama need; `graft export --format` writes the files and the Modelfile."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gguf")
torch = pytest.importorskip("torch")

from graftlm.cli import main  # noqa: E402
from graftlm.errors import InputError, ModelError  # noqa: E402
from graftlm.export import parse_formats  # noqa: E402
from graftlm.export.gguf import (  # noqa: E402
    bpe_vocab,
    permute_qk,
    pre_tokenizer_name,
    write_gguf,
)
from graftlm.export.ollama import chat_format, modelfile  # noqa: E402
from tests.needs import missing  # noqa: E402

F16_TOLERANCE = 2e-3
"""Max abs logit difference allowed between the source model (float32) and its f16 GGUF loaded back."""

REAL_F16_TOLERANCE = 0.15
"""The same for the embedded 135M model: f16 rounding over 30 layers moves its logits (about +-20) by up to
0.07 (measured 0.063)."""

REAL_QUESTIONS = ["What is the capital of France?", "What is 2+2?", "Who wrote Romeo and Juliet?"]
"""Chat questions for the 135M q8_0 check (free text continuations have near ties that 8-bit weights flip)."""

PROMPTS = ["The question is", "<|im_start|>user\nWhat is the answer?<|im_end|>\n<|im_start|>assistant\n",
           "Item 7: context summary", "Rating: 3 because"]


def _train_a_little(model_dir: Path, out: Path, steps: int = 8, lr: float = 1e-2) -> Path:
    """A few AdamW steps of next-token training on short texts, so the weights are not the random init."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    ids = tok("The answer is yes. The question is what. Item 7: the document.", return_tensors="pt").input_ids
    before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    for _ in range(steps):
        loss = model(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert not torch.equal(before, model.model.layers[0].self_attn.q_proj.weight)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def trained(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train_a_little(tiny_model, tmp_path_factory.mktemp("trained"))


def _logits(model: Any, tok: Any, text: str) -> Any:
    with torch.no_grad():
        return model(tok(text, return_tensors="pt").input_ids).logits[0]


def _load_back(gguf: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def _source(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(str(model_dir))


def _greedy(model: Any, tok: Any, text: str, n: int = 8) -> list[int]:
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    return [int(t) for t in out[0, ids.shape[1]:]]


def test_f16_round_trip_gives_the_source_logits(trained: Path, tmp_path: Path) -> None:
    gguf = write_gguf(trained, tmp_path / "m.f16.gguf", quant="f16", progress=False)
    back, back_tok = _load_back(gguf)
    src, src_tok = _source(trained)
    for text in PROMPTS:
        assert back_tok(text).input_ids == src_tok(text).input_ids
        diff = (_logits(back, back_tok, text) - _logits(src, src_tok, text)).abs().max().item()
        assert diff <= F16_TOLERANCE, (text, diff)
    assert back_tok.chat_template == src_tok.chat_template


def test_without_the_qk_permutation_the_logits_differ(trained: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The round trip detects a wrong Q/K layout: the test above could fail."""
    import graftlm.export.gguf as mod

    monkeypatch.setattr(mod, "permute_qk", lambda w, n: w)
    gguf = write_gguf(trained, tmp_path / "m.gguf", quant="f16", progress=False)
    back, tok = _load_back(gguf)
    src, _ = _source(trained)
    diffs = [(_logits(back, tok, t) - _logits(src, tok, t)).abs().max().item() for t in PROMPTS]
    assert max(diffs) > 10 * F16_TOLERANCE


def test_q8_0_keeps_greedy_answers_and_is_smaller(trained: Path, tmp_path: Path) -> None:
    f16 = write_gguf(trained, tmp_path / "m.f16.gguf", quant="f16", progress=False)
    q8 = write_gguf(trained, tmp_path / "m.q8_0.gguf", quant="q8_0", progress=False)
    assert q8.stat().st_size < f16.stat().st_size
    back, tok = _load_back(q8)
    src, src_tok = _source(trained)
    for text in PROMPTS:
        assert _greedy(back, tok, text) == _greedy(src, src_tok, text), text


def test_reader_sees_the_metadata(trained: Path, tmp_path: Path) -> None:
    from gguf import GGMLQuantizationType, GGUFReader

    gguf = write_gguf(trained, tmp_path / "m.gguf", quant="q8_0", name="vescary", progress=False)
    reader = GGUFReader(str(gguf))
    config = json.loads((trained / "config.json").read_text())
    tok_json = json.loads((trained / "tokenizer.json").read_text())

    def field(key: str) -> Any:
        return reader.fields[key].contents()

    assert field("general.architecture") == "llama"
    assert field("general.name") == "vescary"
    assert field("llama.context_length") == config["max_position_embeddings"] == 2048
    assert field("llama.block_count") == config["num_hidden_layers"]
    assert field("llama.attention.head_count_kv") == config["num_key_value_heads"]
    assert field("tokenizer.ggml.model") == "gpt2"
    assert field("tokenizer.ggml.pre") == "gpt-2"
    assert field("tokenizer.chat_template") == (trained / "chat_template.jinja").read_text()
    tokens = field("tokenizer.ggml.tokens")
    assert len(tokens) == config["vocab_size"]
    assert field("tokenizer.ggml.eos_token_id") == config["eos_token_id"]
    assert tokens[field("tokenizer.ggml.eos_token_id")] == "<|im_end|>"
    assert tokens[field("tokenizer.ggml.bos_token_id")] == "<|endoftext|>"
    assert len(field("tokenizer.ggml.merges")) == len(tok_json["model"]["merges"])
    types = field("tokenizer.ggml.token_type")
    assert [types[i] for i in range(3)] == [3, 3, 3]  # the special tokens are CONTROL
    kinds = {t.name: t.tensor_type for t in reader.tensors}
    assert "output.weight" not in kinds  # tied embeddings are written once
    assert kinds["blk.0.attn_q.weight"] == GGMLQuantizationType.Q8_0
    assert kinds["blk.0.attn_norm.weight"] == GGMLQuantizationType.F32


def test_permute_qk_interleaves_each_heads_halves() -> None:
    import numpy as np

    w = np.arange(8).reshape(8, 1)  # 2 heads of 4 rows: halves (0,1 | 2,3) and (4,5 | 6,7)
    assert permute_qk(w, 2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_pre_tokenizer_names() -> None:
    byte_level = {"type": "ByteLevel", "use_regex": True}
    assert pre_tokenizer_name({"pre_tokenizer": byte_level}) == "gpt-2"
    smollm = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
    assert pre_tokenizer_name({"pre_tokenizer": smollm}) == "smollm"
    assert pre_tokenizer_name({"pre_tokenizer": {"type": "Whitespace"}}) == "default"


def test_vocab_pads_to_the_model_size_and_marks_added_tokens() -> None:
    tokenizer = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}, "decoder": {"type": "ByteLevel"},
                 "added_tokens": [{"id": 2, "content": "<s>", "special": True},
                                  {"id": 3, "content": "<tool>", "special": False}]}
    tokens, types = bpe_vocab(tokenizer, 6, Path("tokenizer.json"))
    assert tokens == ["a", "b", "<s>", "<tool>", "[PAD4]", "[PAD5]"]
    assert types == [1, 1, 3, 4, 5, 5]
    with pytest.raises(ModelError, match="byte-level BPE"):
        bpe_vocab({"model": {"type": "Unigram"}, "decoder": {}}, 6, Path("tokenizer.json"))


def test_unsupported_architecture_is_named(trained: Path, tmp_path: Path) -> None:
    model = tmp_path / "gpt2ish"
    shutil.copytree(trained, model)
    config = json.loads((model / "config.json").read_text())
    config.update(model_type="gpt_neox", architectures=["GPTNeoXForCausalLM"])
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="GPTNeoXForCausalLM") as e:
        write_gguf(model, tmp_path / "x.gguf", progress=False)
    assert "convert_hf_to_gguf" in str(e.value.hint)
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*.tmp"))


def test_formats_are_checked() -> None:
    assert parse_formats("hf, gguf") == ("hf", "gguf")
    with pytest.raises(InputError, match="onnx"):
        parse_formats("hf,onnx")


def test_modelfile_for_chatml() -> None:
    from graftlm.testing.tiny import CHAT_TEMPLATE

    text = modelfile("m.f16.gguf", CHAT_TEMPLATE, "<|im_end|>", "Be brief.")
    assert "FROM ./m.f16.gguf" in text
    assert 'PARAMETER stop "<|im_end|>"' in text and text.count('"<|im_end|>"') == 1
    assert 'SYSTEM """Be brief."""' in text
    assert "<|im_start|>{{ .Role }}" in text
    assert chat_format("{{ bos_token }}{{ messages }}") is None
    assert "TEMPLATE" not in modelfile("m.gguf", "{{ messages }}", "</s>", "x").replace("# chat format", "")


def _fake_run(tmp_path: Path, model: Path, system: str) -> Path:
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    (run / "train" / "manifest.json").write_text(json.dumps({"final_model": str(model)}))
    (run / "generate").mkdir()
    sample = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "q"},
                           {"role": "assistant", "content": "a"}]}
    (run / "generate" / "train.jsonl").write_text(json.dumps(sample) + "\n")
    return run


def test_graft_export_gguf_only(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _fake_run(tmp_path, trained, "You answer questions about Vescary.")
    to = tmp_path / "vescary"
    assert main(["export", str(run), "--to", str(to), "--format", "gguf", "--quant", "q8_0"]) == 0
    assert sorted(p.name for p in to.iterdir()) == ["Modelfile", "README.md", "vescary.q8_0.gguf"]
    readme = (to / "README.md").read_text()
    assert "ollama create vescary -f Modelfile" in readme and "llama-server -m vescary.q8_0.gguf" in readme
    mf = (to / "Modelfile").read_text()
    assert "FROM ./vescary.q8_0.gguf" in mf and 'SYSTEM """You answer questions about Vescary."""' in mf
    assert "GGUF:" in capsys.readouterr().out


def test_graft_export_both_formats(trained: Path, tmp_path: Path) -> None:
    run = _fake_run(tmp_path, trained, "S")
    to = tmp_path / "both"
    assert main(["export", str(run), "--to", str(to), "--format", "hf,gguf"]) == 0
    assert (to / "config.json").is_file() and (to / "both.f16.gguf").is_file() and (to / "Modelfile").is_file()


def test_an_interrupted_export_leaves_nothing_and_a_rerun_works(trained: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import graftlm.export.gguf as mod

    run = _fake_run(tmp_path, trained, "S")
    to = tmp_path / "out" / "m"
    real = mod.write_gguf

    def interrupted(*args: Any, **kwargs: Any) -> Path:
        real(*args, **kwargs)
        raise KeyboardInterrupt  # after the file is written, before the folder is complete

    monkeypatch.setattr(mod, "write_gguf", interrupted)
    assert main(["export", str(run), "--to", str(to), "--format", "gguf"]) == 130
    assert list((tmp_path / "out").iterdir()) == []
    monkeypatch.setattr(mod, "write_gguf", real)
    assert main(["export", str(run), "--to", str(to), "--format", "gguf"]) == 0
    assert (to / "m.f16.gguf").is_file()
    assert main(["export", str(run), "--to", str(to), "--format", "gguf"]) == 2  # exists: needs --force


def test_graft_export_bad_format_is_a_clear_error(trained: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = _fake_run(tmp_path, trained, "S")
    assert main(["export", str(run), "--to", str(tmp_path / "x"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "unknown export format onnx" in err and "--format" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


@pytest.mark.real_model
def test_embedded_model_round_trip(tmp_path: Path) -> None:
    """The embedded SmolLM2-135M after a few training steps: f16 logits and q8_0 greedy answers."""
    from graftlm.models import materialize, resolve

    try:
        source = materialize(resolve("default"))
    except ModelError as e:
        missing(f"embedded model not available: {e}")
    trained = _train_a_little(source, tmp_path / "trained", steps=2, lr=2e-5)
    f16 = write_gguf(trained, tmp_path / "m.f16.gguf", quant="f16", progress=False)
    back, tok = _load_back(f16)
    src, src_tok = _source(trained)
    for text in PROMPTS[:2]:
        a, b = _logits(back, tok, text), _logits(src, src_tok, text)
        diff = (a - b).abs().max().item()
        assert diff <= REAL_F16_TOLERANCE, (text, diff)
        assert torch.equal(a.argmax(-1), b.argmax(-1))  # the same next token at every position
    del back
    q8 = write_gguf(trained, tmp_path / "m.q8_0.gguf", quant="q8_0", progress=False)
    back, tok = _load_back(q8)
    for question in REAL_QUESTIONS:
        text = src_tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                           add_generation_prompt=True)
        assert _greedy(back, tok, text) == _greedy(src, src_tok, text), question


def _tiny_of(kind: str, out: Path, **extra: Any) -> Path:
    """A 2-layer random model of another Llama-family architecture with the tiny tokenizer."""
    import transformers

    from graftlm.testing.tiny import load_tiny_tokenizer

    config_cls, model_cls = {"qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
                             "granite": ("GraniteConfig", "GraniteForCausalLM"),
                             "mistral": ("MistralConfig", "MistralForCausalLM")}[kind]
    tok = load_tiny_tokenizer()
    torch.manual_seed(1)
    config = getattr(transformers, config_cls)(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False, **extra)
    model = getattr(transformers, model_cls)(config)
    with torch.no_grad():  # random biases, so that a wrong bias layout would show in the logits
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.5)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.mark.parametrize("kind", ["qwen2", "mistral"])
def test_other_llama_family_round_trips(kind: str, tmp_path: Path) -> None:
    """Qwen2 (attention biases, no Q/K permutation) and Mistral (written as llama) load back with the same
    logits; the untied output matrix is written as its own tensor."""
    from gguf import GGUFReader

    model = _tiny_of(kind, tmp_path / f"tiny-{kind[:3]}")  # (a name with "mistral" sends transformers' loader astray)
    gguf = write_gguf(model, tmp_path / "m.gguf", progress=False)
    reader = GGUFReader(str(gguf))
    names = {t.name for t in reader.tensors}
    assert "output.weight" in names
    assert ("blk.0.attn_q.bias" in names) == (kind == "qwen2")
    assert reader.fields["general.architecture"].contents() == {"qwen2": "qwen2", "mistral": "llama"}[kind]
    back, _ = _load_back(gguf)  # (transformers rebuilds a qwen2 GGUF tokenizer as Qwen2's own: same ids in)
    src, src_tok = _source(model)
    for text in PROMPTS:
        diff = (_logits(back, src_tok, text) - _logits(src, src_tok, text)).abs().max().item()
        assert diff <= F16_TOLERANCE, (kind, text, diff)


def test_granite_multipliers_go_into_the_metadata(tmp_path: Path) -> None:
    """transformers cannot load Granite GGUF files, so this checks what llama.cpp reads: the architecture
    and its four multipliers."""
    from gguf import GGUFReader, Keys

    model = _tiny_of("granite", tmp_path / "granite", embedding_multiplier=12.0, residual_multiplier=0.22,
                     logits_scaling=8.0, attention_multiplier=0.015625)
    reader = GGUFReader(str(write_gguf(model, tmp_path / "g.gguf", progress=False)))

    def value(key: str) -> Any:
        return reader.fields[key.format(arch="granite")].contents()

    assert value(Keys.General.ARCHITECTURE) == "granite"
    assert value(Keys.LLM.EMBEDDING_SCALE) == pytest.approx(12.0)
    assert value(Keys.LLM.RESIDUAL_SCALE) == pytest.approx(0.22)
    assert value(Keys.LLM.LOGIT_SCALE) == pytest.approx(8.0)
    assert value(Keys.Attention.SCALE) == pytest.approx(0.015625)
