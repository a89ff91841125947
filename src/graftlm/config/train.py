"""Data mixing and training configuration (`graft mix`, `graft train`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from graftlm.config.base import Section
from graftlm.config.model_spec import ModelSpec

PhaseName = Literal["knowledge-1", "knowledge-2", "skills", "stacked"]


class ExtraDataset(Section):
    """A user's own instruction data (messages JSONL) mixed into one phase."""

    path: str
    """A JSONL file, one `{"messages": [{"role", "content"}, ...]}` object a line (InstructLab's and
    OpenAI's chat format; `unmask` and `metadata` keys are kept when present). Relative paths are taken
    from the working directory."""

    phase: PhaseName = "skills"
    """The phase it is mixed into: `knowledge-1`, `knowledge-2`, `skills` (phased strategy) or `stacked`."""

    fraction: float | None = Field(default=None, ge=0)
    """Number of its samples to add, as a fraction of the phase's own samples (0.5 adds half as many as the
    phase has). Samples are drawn without replacement, repeating the whole file when more are needed."""

    count: int | None = Field(default=None, ge=0)
    """Number of its samples to add (instead of `fraction`). Neither set: all of them, once."""

    @model_validator(mode="after")
    def _one_amount(self) -> ExtraDataset:
        if self.fraction is not None and self.count is not None:
            raise ValueError("set either `fraction` or `count` for an extra dataset, not both")
        return self


class MixConfig(Section):
    """How generated data becomes phase datasets."""

    strategy: Literal["phased", "stacked"] = "phased"
    """`phased`: knowledge-1, knowledge-2, skills with replay (the LAB paper); `stacked`: one phase with everything."""

    seed: int = 42
    """Seed for shuffling and sampling the replay buffer."""

    short_response_words: int = Field(default=60, ge=1)
    """Knowledge samples whose answer has at most this many words are "short" (phase knowledge-1); longer
    ones (summaries, detailed answers) go to knowledge-2."""

    knowledge_2_replay: float = Field(default=1.0, ge=0)
    """Fraction of knowledge-1's samples replayed in knowledge-2 (1.0 = all of them, 0 = no replay)."""

    skills_replay: float = Field(default=0.5, ge=0)
    """Fraction of the knowledge phases' own samples (knowledge-1 + knowledge-2) replayed in the skills phase:
    the replay buffer that keeps the new knowledge from being forgotten. Values above 1 repeat samples."""

    document_ratio: float = Field(default=1.0, ge=0)
    """Knowledge phase (`knowledge-1`, or the `stacked` phase): document-style samples (trained on every
    token) per Q&A sample (trained on the answer), per leaf. The leaf's own document chunks (`chunks.jsonl`
    of the generate folder) are added, repeated as whole copies and then a seeded sample, until the phase's
    document-style samples (those chunks plus generated unmasked views such as summaries) reach this many per
    Q&A sample. Every chunk is added at least once, even at 0: the document's own text is always a view, so
    training never teaches less than the document itself (pre-instruction tuning, arXiv 2402.12847)."""

    extra: list[ExtraDataset] = Field(default_factory=list)
    """Extra datasets (your existing instruction data) mixed into phases by fraction or count."""


class LoraConfig(Section):
    """Low-rank adapters (peft) instead of full fine-tuning. Checkpoints are saved merged."""

    r: int = Field(default=16, ge=1)
    """Rank of the adapters."""

    alpha: int = Field(default=32, ge=1)
    """Scaling numerator: the update is scaled by alpha / r."""

    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the adapter input."""

    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Names of the linear layers that get adapters."""


class PhaseOverrides(Section):
    """Settings that differ for one phase (unset fields use the train section's value)."""

    epochs: int | None = Field(default=None, ge=1)
    """Epochs of this phase."""

    learning_rate: float | None = Field(default=None, gt=0)
    """Peak learning rate of this phase."""

    batch_size: int | None = Field(default=None, ge=1)
    """Effective batch size in samples of this phase."""

    warmup_steps: int | None = Field(default=None, ge=0)
    """Warm-up steps of this phase."""


def _row_holds_longest_sample(v: int, data: dict[str, Any]) -> str | None:
    row = data.get("max_tokens_per_row")
    if row is None or v <= row:
        return None
    return (f"max_seq_len ({v}) is larger than max_tokens_per_row ({row}): a packed row must hold the longest "
            "sample; raise train.max_tokens_per_row or lower train.max_seq_len")


def _min_lr_below_peak(v: float, data: dict[str, Any]) -> str | None:
    lr = data.get("learning_rate")
    if data.get("schedule") != "cosine" or lr is None or v <= lr:
        return None
    return f"min_lr ({v}) is above learning_rate ({lr}); set train.min_lr below train.learning_rate"


def _phase_lr_above_min_lr(v: dict[str, PhaseOverrides], data: dict[str, Any]) -> str | None:
    min_lr = data.get("min_lr")
    if data.get("schedule") != "cosine" or min_lr is None:
        return None
    for name, over in v.items():
        if over.learning_rate is not None and min_lr > over.learning_rate:
            return (f"{name}: learning_rate ({over.learning_rate}) is below train.min_lr ({min_lr}); raise the "
                    "phase's learning_rate or lower train.min_lr")
    return None


def _attention_on_device(v: str, data: dict[str, Any]) -> str | None:
    if v not in ("flex_attention", "flash_attention_2") or data.get("device") != "cpu":
        return None
    return (f"attention {v} trains only on a CUDA GPU, and train.device is cpu; use attention: sdpa or varlen on "
            "CPU (they keep packed samples apart too)")


CROSS_FIELD_CHECKS: dict[str, Callable[[Any, dict[str, Any]], str | None]] = {
    "max_seq_len": _row_holds_longest_sample,
    "min_lr": _min_lr_below_peak,
    "phase_overrides": _phase_lr_above_min_lr,
    "attention": _attention_on_device,
}
"""Per field: a pure check of its value against the fields declared above it; the message, or None."""


class TrainConfig(Section):
    """How the student is trained."""

    student: ModelSpec = ModelSpec("default")
    """The model to train: `default` (embedded SmolLM2-135M-Instruct), a Hugging Face model folder or a GGUF file."""

    epochs: int = Field(default=3, ge=1)
    """Passes over each phase's data (the paper: 4-7 per phase)."""

    batch_size: int = Field(default=32, ge=1)
    """Effective batch size in samples per optimizer step, reached by gradient accumulation over packed
    micro-batches (and over processes under torchrun). The paper: 3,840."""

    max_tokens_per_row: int = Field(default=4096, ge=16)
    """Tokens in one packed micro-batch row (padding-free: samples are concatenated up to this length).
    Larger rows are faster on a GPU and need more memory."""

    max_seq_len: int = Field(default=1024, ge=8)
    """Longest sample in tokens; longer samples are dropped (and counted in the phase manifest)."""

    learning_rate: float = Field(default=2e-5, gt=0)
    """Peak learning rate of AdamW."""

    warmup_steps: int = Field(default=25, ge=0)
    """Optimizer steps of linear warm-up from 0 to the peak learning rate."""

    schedule: Literal["constant", "cosine"] = "constant"
    """After warm-up: `constant` (the paper, no decay between phases) or `cosine` down to `min_lr`."""

    min_lr: float = Field(default=0.0, ge=0)
    """Learning rate at the end of a cosine schedule."""

    weight_decay: float = Field(default=0.0, ge=0)
    """AdamW weight decay."""

    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""

    adam_eps: float = Field(default=1e-8, gt=0)
    """AdamW epsilon."""

    max_grad_norm: float | None = Field(default=1.0, gt=0)
    """Clip the global gradient norm to this value; None disables clipping."""

    checkpoint_every_samples: int | None = Field(default=None, ge=1)
    """Also save a checkpoint every this many training samples (besides the end of each epoch)."""

    save_epoch_end: bool = True
    """Save a checkpoint at the end of every epoch (the last epoch always saves)."""

    phase_overrides: dict[str, PhaseOverrides] = Field(default_factory=dict)
    """Per-phase settings keyed by phase name (`knowledge-1`, `knowledge-2`, `skills`, `stacked`), e.g.
    `{skills: {epochs: 10, learning_rate: 6.0e-6}}`."""

    lora: LoraConfig | None = None
    """Train low-rank adapters instead of all weights; None (default) is full fine-tuning."""

    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Compute dtype: `auto` = bfloat16 autocast on CUDA (master weights stay float32), float32 on CPU."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto` (CUDA when available, else CPU), `cpu` or `cuda`. Under torchrun each process takes its local GPU."""

    gradient_checkpointing: bool | Literal["auto"] = "auto"
    """Recompute activations in the backward pass: less memory, about a third more compute. `auto`: on when
    training on CPU with max_seq_len >= 1024 (keeps a SmolLM2-135M full fine-tune at 1024 tokens near 3 GiB
    instead of 4.3), off otherwise."""

    loss_chunk_tokens: int | None = Field(default=512, ge=1)
    """Compute the loss straight from the hidden states in chunks of this many tokens, never holding a whole
    row's logits (a 49k vocabulary makes them the largest tensor). None: ordinary full logits. Used in
    single-process training; under torchrun (FSDP) the full logits are used."""

    attention: Literal["varlen", "sdpa", "flash_attention_2", "flex_attention", "eager"] = "varlen"
    """Attention kernel; all of them keep packed samples apart. `varlen` (default): each sample attends only
    within itself with no mask, through PyTorch's FlashAttention varlen kernel on a CUDA GPU (bf16) and causal
    SDPA per sample elsewhere (2x faster than `sdpa` at 4096-token rows on CPU). `sdpa`, `eager`,
    `flex_attention`: transformers builds a block-causal mask over the whole row from the reset position ids.
    `flash_attention_2` needs the flash-attn package and a GPU."""

    compile: bool = False
    """torch.compile each decoder layer (dynamic shapes, so rows of any length reuse one compiled graph; the
    attention call stays outside the graph). Fuses norms, rotary embeddings and the MLP's activation; costs
    a compilation at the start of every phase (18 s for SmolLM2-135M on CPU). Needs a C++ compiler on CPU,
    Triton on CUDA."""

    kl_to_base: float = Field(default=0.0, ge=0)
    """Forgetting control: weight of a penalty KL(base || student) between the next-token distributions of
    the base model (`train.student`, frozen, computed without gradients) and the model being trained, on
    the training rows' own positions, so no extra data is needed. It keeps what the student predicts
    everywhere else close to what it predicted before while the cross-entropy teaches the new tokens.
    0 (default): off. Costs one more forward pass per row and a frozen copy of the model; single-process
    training only (under torchrun it is a config error)."""

    kl_positions_per_row: int = Field(default=256, ge=1)
    """Positions of each packed row at which `kl_to_base` is computed (evenly spaced over the row): bounds
    the memory of the penalty's logits (positions x vocabulary floats) on CPU."""

    decay_to_base: float = Field(default=0.0, ge=0)
    """Forgetting control (L2-SP): decoupled weight decay toward the base model's weights instead of toward
    zero; after each optimizer step every trained weight moves by `lr * decay_to_base * (w - w_base)`
    toward its base value. 0 (default): off. Full fine-tuning only (LoRA adapters start at zero: use
    `weight_decay` there); single-process training only."""

    num_threads: int | None = Field(default=None, ge=1)
    """CPU threads for torch (None: torch's default)."""

    seed: int = 42
    """Seed for initialisation of new parameters, data order and dropout."""

    @field_validator("max_seq_len", "min_lr", "phase_overrides", "attention")
    @classmethod
    def _cross_field(cls, v: Any, info: ValidationInfo) -> Any:
        """Cross-field checks run when the recipe loads (fields are validated in the order declared, so each
        check sees the fields above it): `graft config` and `graft run` reject a bad recipe at once, with
        the file, line and field, before any teacher call."""
        problem = CROSS_FIELD_CHECKS[str(info.field_name)](v, info.data)
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _known_phases(self) -> TrainConfig:
        known = ("knowledge-1", "knowledge-2", "skills", "stacked")
        for name in self.phase_overrides:
            if name not in known:
                raise ValueError(f"phase_overrides: unknown phase {name!r}; use one of {', '.join(known)}")
        return self

    def use_gradient_checkpointing(self, device: str) -> bool:
        """The `gradient_checkpointing` setting resolved for a device ("cpu", "cuda:0", ...)."""
        if self.gradient_checkpointing == "auto":
            return not device.startswith("cuda") and self.max_seq_len >= 1024
        return bool(self.gradient_checkpointing)

    def keeps_several_checkpoints(self) -> bool:
        """Whether some phase saves more than one checkpoint, so that checkpoint selection has a choice to
        make (a checkpoint every N samples, or one per epoch of a phase trained for several epochs)."""
        configs = [self, *(self.for_phase(name) for name in self.phase_overrides)]
        return any(c.checkpoint_every_samples is not None or (c.save_epoch_end and c.epochs > 1) for c in configs)

    def for_phase(self, name: str) -> TrainConfig:
        """This config with the phase's overrides applied."""
        over = self.phase_overrides.get(name)
        if over is None:
            return self
        changes = {k: v for k, v in over.model_dump().items() if v is not None}
        return self.model_copy(update=changes)
