"""``text/gpt``: a GPT-2-architecture causal LM with a locally trained byte-level BPE tokenizer.

Training reuses :class:`~gailkit.generators.base.TorchGenerator`'s epoch loop (checkpoints,
exact resume, TensorBoard, progress bar); the Hugging Face model is its one module. The
saved model lives in ``DIR/hf/`` (``save_pretrained``: ``model.safetensors``, ``config.json``,
``tokenizer.json``) beside gailkit's own ``DIR/config.json``, so ``gailkit generate
sample/eval DIR`` works and ``AutoModelForCausalLM.from_pretrained(DIR/hf)`` does too.

``pretrained=PATH`` (or :meth:`GPT.from_pretrained`) starts from any local causal-LM folder
with its tokenizer instead; nothing is ever fetched from a hub.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

import gailkit.nn.lm  # noqa: F401  (offline switches before transformers is imported)
from gailkit.configs import doc
from gailkit.errors import UsageError
from gailkit.generators import register
from gailkit.generators.base import GeneratorConfig, TorchGenerator
from gailkit.generators.text.corpus import TextData, write_samples
from gailkit.generators.text.decoding import METHODS, decode
from gailkit.generators.text.metrics import bits_per_char, lm_nll, perplexity
from gailkit.generators.text.tokenizer import encode_documents, load_tokenizer, tokenizer_sha, train_bpe
from gailkit.nn.checkpoint import CheckpointError, atomic_dir, optimizer_steps, recover_dir
from gailkit.nn.lm import GPT_SIZES, build_causal_lm

__all__ = ["GPT", "GPTConfig"]


@dataclasses.dataclass
class GPTConfig(GeneratorConfig):
    """Options of ``text/gpt`` (the CLI flags of `gailkit generate train text gpt`)."""

    epochs: int = dataclasses.field(default=10, metadata=doc("passes over the training text"))
    batch_size: int = dataclasses.field(default=32, metadata=doc("sequences of `context` tokens per step"))
    lr: float = dataclasses.field(default=1e-3, metadata=doc("peak learning rate (warm-up, then cosine decay)"))
    grid_every: int = dataclasses.field(default=5, metadata=doc("epochs between sample files (0: never)"))
    size: str = dataclasses.field(default="small", metadata=doc(f"model size: {', '.join(GPT_SIZES)}"))
    vocab_size: int = dataclasses.field(default=2048, metadata=doc("BPE vocabulary size (>= 257)"))
    context: int = dataclasses.field(default=128, metadata=doc("tokens per training sequence and model positions"))
    dropout: float = dataclasses.field(default=0.1, metadata=doc("dropout of embeddings, attention, residuals"))
    weight_decay: float = dataclasses.field(default=0.1, metadata=doc("AdamW weight decay (matrices only)"))
    warmup_steps: int = dataclasses.field(default=100, metadata=doc("linear learning-rate warm-up steps"))
    grad_clip: float = dataclasses.field(default=1.0, metadata=doc("gradient-norm clip (0: off)"))
    scheduled_sampling: float = dataclasses.field(
        default=0.0, metadata=doc("final probability of feeding the model its own prediction instead of the "
                                  "true previous token; ramps up linearly from 0 over training (0: off)"))
    pretrained: str | None = dataclasses.field(
        default=None, metadata=doc("local folder of a pretrained causal LM + tokenizer to start from "
                                   "(never a hub id); its architecture and tokenizer replace size and vocab_size"))
    sample_method: str = dataclasses.field(default="sample", metadata=doc(f"decoding of sample files: "
                                                                          f"{', '.join(METHODS)}"))
    sample_tokens: int = dataclasses.field(default=100, metadata=doc("tokens per sample at most"))
    top_p: float = dataclasses.field(default=0.95, metadata=doc("nucleus mass when sampling"))
    temperature: float = dataclasses.field(default=1.0, metadata=doc("sampling temperature"))

    bounds: ClassVar[dict[str, str]] = {**GeneratorConfig.bounds, "vocab_size": "[257, inf)", "dropout": "[0, 1)",
                                        "weight_decay": "[0, inf)", "warmup_steps": "[0, inf)", "grad_clip": "[0, inf)",
                                        "sample_tokens": "[1, inf)", "top_p": "(0, 1]", "temperature": "(0, inf)"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size not in GPT_SIZES:
            raise UsageError(f"unknown model size {self.size!r}; choose from {', '.join(GPT_SIZES)}")
        if self.sample_method not in METHODS:
            raise UsageError(f"sample_method must be one of {', '.join(METHODS)}, got {self.sample_method!r}")
        if not 0.0 <= self.scheduled_sampling <= 1.0:
            raise UsageError(f"scheduled_sampling must be in [0, 1], got {self.scheduled_sampling}")
        if self.context < 2:
            raise UsageError(f"context must be >= 2 tokens, got {self.context}")


def _local_folder(path: str | Path, what: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UsageError(f"{what}={str(path)!r} is not a local folder; gailkit never downloads models from a hub: "
                         f"save the model and its tokenizer with save_pretrained(FOLDER) and pass FOLDER")
    return folder


@contextlib.contextmanager
def _quiet_transformers():
    """No "Loading weights" / "Writing model shards" progress bars from transformers."""
    from transformers.utils import logging

    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            logging.enable_progress_bar()


@register("text", "gpt")
class GPT(TorchGenerator):
    """GPT-2-style transformer language model with a byte-level BPE tokenizer trained on the data."""

    Config = GPTConfig
    drop_last = False

    def __init__(self, config: Any = None, /, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.tokenizer: Any = None
        self._weights_from: Path | None = None  # a folder to load the HF model from instead of a fresh init
        self._total_steps = 1

    # -- building -----------------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        source = self._weights_from or (Path(cfg.pretrained) if cfg.pretrained else None)
        if source is not None:
            from transformers import AutoModelForCausalLM

            try:
                with _quiet_transformers():
                    # safetensors only: a pytorch_model.bin would be unpickled
                    self.lm = AutoModelForCausalLM.from_pretrained(str(source), local_files_only=True,
                                                                   use_safetensors=True)
            except (OSError, ValueError) as e:
                raise UsageError(f"no causal LM in {source} ({str(e).splitlines()[0]}); it needs the files "
                                 f"save_pretrained writes (config.json + model.safetensors)") from None
        else:
            eos = self.tokenizer.eos_token_id
            self.lm = build_causal_lm(len(self.tokenizer), size=cfg.size, n_positions=cfg.context,
                                      dropout=cfg.dropout, bos_token_id=eos, eos_token_id=eos, pad_token_id=None,
                                      seed=cfg.seed)
        decay = [p for n, p in self.lm.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.lm.named_parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"lm": self.lm}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    # Tied weights (GPT-2's output layer is its input embedding) are stored once: safetensors
    # refuses tensors that share memory.
    def state_tensors(self) -> dict[str, torch.Tensor]:
        out, seen = {}, set()
        for k, v in self.lm.state_dict().items():
            if v.data_ptr() not in seen:
                seen.add(v.data_ptr())
                out[f"lm.{k}"] = v
        return out

    def load_state_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        state = self.lm.state_dict()
        missing, unexpected = self.lm.load_state_dict({k[3:]: v for k, v in tensors.items() if k.startswith("lm.")},
                                                      strict=False)
        stored = {state[k[3:]].data_ptr() for k in tensors if k[3:] in state}
        untied = [k for k in missing if state[k].data_ptr() not in stored]
        if untied or unexpected:
            raise RuntimeError(f"weights do not fit the model: missing {untied[:3]}, unexpected {unexpected[:3]}")

    @property
    def positions(self) -> int:
        c = self.lm.config
        return int(getattr(c, "n_positions", None) or getattr(c, "max_position_embeddings", self.config.context))

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    def _tokenizer_for(self, data: TextData) -> Any:
        if self.config.pretrained:
            return load_tokenizer(_local_folder(self.config.pretrained, "pretrained"))
        return train_bpe(data.documents, vocab_size=self.config.vocab_size)

    def prepare(self, data: TextData) -> tuple[torch.Tensor, ...]:
        """Tokenise ``data`` (training the tokenizer first if the model is new) into
        (N, context + 1) overlapping windows of the ``eos d1 eos d2 ...`` stream."""
        if not isinstance(data, TextData):
            raise TypeError(f"text/gpt fits a TextData (gailkit.generators.text.load_data), got {type(data).__name__}")
        if not self.built:
            self.tokenizer = self._tokenizer_for(data)
            self.build({**data.info(), "vocab_size": len(self.tokenizer), "tokenizer": tokenizer_sha(self.tokenizer)})
        else:  # fine-tuning a loaded model: same tokenizer and network, new data
            self.data_info = {**data.info(), "vocab_size": len(self.tokenizer),
                              "tokenizer": tokenizer_sha(self.tokenizer)}
        context = min(self.config.context, self.positions)
        stream = torch.tensor(encode_documents(self.tokenizer, data.documents), dtype=torch.long)
        if len(stream) < context + 1:
            raise UsageError(f"text from {data.source} is {len(stream)} tokens, shorter than one training "
                             f"sequence ({context + 1}); give more text or a smaller --context")
        starts = torch.arange(0, len(stream) - context, context)
        windows = torch.stack([stream[s:s + context + 1] for s in starts.tolist()])  # (N, context + 1)
        batch = min(self.config.batch_size, len(windows))
        self._total_steps = max(1, self.config.epochs * -(-len(windows) // batch))
        return (windows,)

    # -- training -----------------------------------------------------------------------------
    def _lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to a tenth of the peak by the last step."""
        cfg = self.config
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, self._total_steps - cfg.warmup_steps))
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    def _mix_predictions(self, x: torch.Tensor, prob: float) -> torch.Tensor:
        """Scheduled sampling for transformers (Mihaylova & Martins 2019): a first no-grad pass
        predicts every next token; each input after the first is replaced by the prediction
        for its position with probability ``prob``. (B, T) -> (B, T)."""
        with torch.no_grad():
            # (B, T-1, V): predictions of x[:, 1:]
            logits = self.lm(x, attention_mask=torch.ones_like(x)).logits[:, :-1].float()
            pred = torch.distributions.Categorical(logits=logits).sample()
        swap = torch.rand(pred.shape) < prob
        mixed = x.clone()
        mixed[:, 1:] = torch.where(swap, pred, x[:, 1:])
        return mixed

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
        (seq,) = batch
        x, y = seq[:, :-1], seq[:, 1:]  # (B, T) inputs, (B, T) next-token targets
        step = optimizer_steps(self.opt)
        lr = self._lr_at(step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        logs = {"lr": lr}
        if self.config.scheduled_sampling > 0:
            prob = self.config.scheduled_sampling * min(1.0, step / self._total_steps)
            x = self._mix_predictions(x, prob)
            logs["mix_prob"] = prob
        # an all-ones mask: the end-of-text id doubles as the pad id, but nothing here is padding
        logits = self.lm(x, attention_mask=torch.ones_like(x)).logits  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.lm.parameters(), self.config.grad_clip)
        self.opt.step()
        return {"loss": loss.item(), **logs}

    # -- generating ---------------------------------------------------------------------------
    def generate_ids(self, prompt_ids: list[int], **options: Any) -> list[int]:
        """:func:`~gailkit.generators.text.decoding.decode` on this model (end of text stops it)."""
        self._require_built("generate")
        return decode(self.lm, prompt_ids, **{"eos_token_id": self.eos_id, **options})

    def generate(self, prompt: str = "", **options: Any) -> str:
        """Continue ``prompt`` (empty: start a new document); options as in ``decode``, except
        that ``max_new_tokens`` (default ``sample_tokens``) is cut to what the context holds."""
        self._require_built("generate")
        ids = [self.eos_id] + self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) >= self.positions:
            raise UsageError(f"the prompt is {len(ids) - 1} tokens; this model's context is {self.positions}")
        # the text ends where the context does: ask for more and get at most what fits
        wanted = options.get("max_new_tokens", self.config.sample_tokens)
        options["max_new_tokens"] = min(wanted, self.positions - len(ids))
        new = self.generate_ids(ids, **options)
        if new and new[-1] == self.eos_id:
            new = new[:-1]
        return self.tokenizer.decode(new, skip_special_tokens=False)

    def sample(self, n: int, *, seed: int | None = None, prompt: str = "", **options: Any) -> list[str]:
        """``n`` texts by the configured decoding (``sample_method``, ``top_p``, ``temperature``);
        sample ``i`` uses seed ``seed + i``. Keyword options override the configured ones."""
        cfg = self.config
        base = {"method": cfg.sample_method, "top_p": cfg.top_p, "temperature": cfg.temperature}
        seed = 0 if seed is None else seed
        return [self.generate(prompt, **{**base, **options, "seed": seed + i}) for i in range(n)]

    def save_samples(self, path: str | Path, *, n: int = 8, seed: int = 0) -> Path:
        return write_samples(path, self.sample(n, seed=seed), title=f"text/gpt ({self.config.sample_method})")

    def evaluate(self, data: TextData, *, batch_size: int = 16, **kwargs: Any) -> dict[str, float]:
        """Held-out NLL per token (nats), perplexity per token and bits per character."""
        self._require_built("evaluate")
        ids = encode_documents(self.tokenizer, data.documents)
        total, n_tokens = lm_nll(self.lm, ids, context=min(self.config.context, self.positions),
                                 batch_size=batch_size)
        return {"loss": total / n_tokens, "perplexity": perplexity(total, n_tokens),
                "bits_per_char": bits_per_char(total, data.characters), "tokens": float(n_tokens),
                "characters": float(data.characters)}

    # -- storage: DIR/config.json (gailkit) + DIR/hf/ (save_pretrained) --------------------------
    def save(self, directory: str | Path) -> Path:
        self._require_built("save")
        directory = Path(directory)

        def write(tmp: Path) -> None:
            with _quiet_transformers():
                self.lm.save_pretrained(str(tmp))
                self.tokenizer.save_pretrained(str(tmp))

        atomic_dir(directory / "hf", write)
        self._write_config(directory, extra={"weights": "hf/"})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> GPT:
        directory = Path(directory)
        meta, model = cls._read_config(directory)
        hf = recover_dir(directory / "hf")
        if not (hf / "config.json").is_file():
            raise CheckpointError(f"generator: {hf} is missing or incomplete; was {directory} saved by text/gpt?")
        return model._load_folder(hf, meta["data"], history=meta.get("history", []))

    @classmethod
    def from_pretrained(cls, path: str | Path, **overrides: Any) -> GPT:
        """A ready model from a local folder holding a causal LM and its tokenizer
        (``save_pretrained`` output). A hub id or missing folder is a ValueError."""
        folder = _local_folder(path, "pretrained")
        model = cls(pretrained=str(folder), **overrides)
        return model._load_folder(folder, {"source": f"pretrained:{folder}"})

    def _load_folder(self, folder: Path, data_info: dict[str, Any], *, history: list | None = None) -> GPT:
        self.tokenizer = load_tokenizer(folder)
        self._weights_from = folder
        self.build({**data_info, "vocab_size": len(self.tokenizer), "tokenizer": tokenizer_sha(self.tokenizer)}
                   if "tokenizer" not in data_info else data_info)
        self._weights_from = None
        self.history = list(history or [])
        return self
