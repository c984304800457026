"""Decoding a causal language model: token ids in, token ids out (no tokenizer here).

One entry point, :func:`decode`, for greedy search, beam search, sampling (temperature,
top-k, top-p) and contrastive search. The first three go through ``transformers``'
``generate`` with an explicit ``GenerationConfig`` (so a pretrained folder's own generation
defaults never leak in); contrastive search (Su et al. 2022, "A Contrastive Framework for
Neural Text Generation") is implemented here because transformers 5 moved it to a hub
download. It continues one prompt of any token ids; the music family samples many pieces at
once under a grammar mask, with its own loop (:mod:`gailkit.generators.music.transformer`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

import gailkit.nn.lm  # noqa: F401  (offline switches before transformers is imported)
from gailkit.errors import UsageError

__all__ = ["METHODS", "DecodingOptions", "contrastive_search", "decode"]

METHODS: tuple[str, ...] = ("greedy", "beam", "sample", "contrastive")


@dataclasses.dataclass(frozen=True)
class DecodingOptions:
    """How to continue a prompt; options a method does not use are ignored by it.

    Attributes:
        method: "greedy", "beam", "sample" or "contrastive".
        max_new_tokens: tokens to generate at most (fewer if ``eos_token_id`` comes).
        temperature: divides the logits before sampling ("sample" only), > 0.
        top_k: "sample": keep the k most likely tokens (0 = all); "contrastive": number of
            candidates per step (None = 4 for contrastive, 0 for sample).
        top_p: "sample": nucleus mass in (0, 1] (1 = off).
        repetition_penalty: >= 1; divides positive (multiplies negative) logits of tokens
            already in the sequence (CTRL, Keskar et al. 2019); 1 = off. All methods.
        num_beams: beams of "beam" search, >= 1.
        no_repeat_ngram_size: forbid repeating any n-gram of this size (0 = off). All methods.
        penalty_alpha: "contrastive": weight of the degeneration penalty, in [0, 1].
        seed: seeds "sample" (others are deterministic anyway); same seed, same ids.
        eos_token_id: stop when this id is generated (it is kept in the output).
    """

    method: str = "greedy"
    max_new_tokens: int = 50
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    num_beams: int = 4
    no_repeat_ngram_size: int = 0
    penalty_alpha: float = 0.6
    seed: int = 0
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}, got {self.method!r}"),
            (isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1,
             f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature!r}"),
            (self.top_k is None or (isinstance(self.top_k, int) and self.top_k >= 0),
             f"top_k must be an int >= 0 or None, got {self.top_k!r}"),
            (0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p!r}"),
            (self.repetition_penalty >= 1,
             f"repetition_penalty must be >= 1 (1 = off), got {self.repetition_penalty!r}"),
            (isinstance(self.num_beams, int) and self.num_beams >= 1,
             f"num_beams must be an int >= 1, got {self.num_beams!r}"),
            (isinstance(self.no_repeat_ngram_size, int) and self.no_repeat_ngram_size >= 0,
             f"no_repeat_ngram_size must be an int >= 0 (0 = off), got {self.no_repeat_ngram_size!r}"),
            (0 <= self.penalty_alpha <= 1, f"penalty_alpha must be in [0, 1], got {self.penalty_alpha!r}"),
            (not (self.method == "contrastive" and self.top_k == 0),
             "top_k is the number of contrastive candidates; it must be >= 1 for method='contrastive'"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    @classmethod
    def from_kwargs(cls, **options: Any) -> DecodingOptions:
        """Build from keyword options; an unknown name is a ValueError listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise UsageError(f"unknown decoding option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}")
        return cls(**options)


def _prompt_tensor(model: torch.nn.Module, prompt_ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    ids = torch.as_tensor(prompt_ids, dtype=torch.long).flatten()
    if ids.numel() == 0:
        raise UsageError("prompt_ids is empty; start from at least one token (e.g. the end-of-text id)")
    vocab = model.get_output_embeddings().weight.shape[0]
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise UsageError(f"prompt_ids must lie in [0, {vocab}) (the model's vocabulary), got "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    return ids[None].to(next(model.parameters()).device)  # (1, T)


def _check_length(model: torch.nn.Module, prompt_len: int, max_new_tokens: int) -> None:
    limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    if limit is not None and prompt_len + max_new_tokens > limit:
        raise UsageError(f"prompt ({prompt_len} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's "
                         f"context of {limit} tokens; shorten the prompt or ask for fewer tokens")


def decode(model: torch.nn.Module, prompt_ids: Sequence[int] | torch.Tensor,
           options: DecodingOptions | None = None, **kwargs: Any) -> list[int]:
    """Continue ``prompt_ids`` with a causal LM.

    Args:
        model: a transformers causal LM (``GPT2LMHeadModel`` and the like); it is put in
            eval mode for the call and restored afterwards.
        prompt_ids: the prompt, a 1-D sequence of token ids (at least one id).
        options: a :class:`DecodingOptions`; or give its fields as keyword arguments
            (``method="sample", top_p=0.9, seed=3``). Unknown names and invalid values raise
            ValueError naming the valid choices.

    Returns:
        The generated ids only (the prompt is not repeated), at most ``max_new_tokens``.
    """
    if options is None:
        options = DecodingOptions.from_kwargs(**kwargs)
    elif kwargs:
        options = DecodingOptions.from_kwargs(**{**dataclasses.asdict(options), **kwargs})
    ids = _prompt_tensor(model, prompt_ids)
    _check_length(model, ids.shape[1], options.max_new_tokens)
    was_training = model.training
    model.eval()
    try:
        # the caller's RNG streams are left as they were (CUDA's too when the model is there)
        devices = [ids.device] if ids.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(options.seed)
            if options.method == "contrastive":
                out = contrastive_search(model, ids, options)
            else:
                out = _hf_generate(model, ids, options)
    finally:
        model.train(was_training)
    return [int(t) for t in out]


def _hf_generate(model: torch.nn.Module, ids: torch.Tensor, o: DecodingOptions) -> torch.Tensor:
    from transformers import GenerationConfig

    sample = o.method == "sample"
    # An explicit config: every setting comes from `o`, none from the model's saved defaults.
    flags: dict[str, Any] = {}
    if sample:
        flags.update(temperature=o.temperature, top_k=o.top_k or 0, top_p=o.top_p)
    if o.method == "beam":
        flags.update(num_beams=o.num_beams, early_stopping=True, length_penalty=1.0)
    else:
        flags.update(num_beams=1)
    config = GenerationConfig(
        max_new_tokens=o.max_new_tokens, min_new_tokens=0, do_sample=sample,
        repetition_penalty=o.repetition_penalty, no_repeat_ngram_size=o.no_repeat_ngram_size,
        eos_token_id=o.eos_token_id, pad_token_id=o.eos_token_id if o.eos_token_id is not None else 0,
        bos_token_id=None, num_return_sequences=1, **flags,
    )
    out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config)
    new = out[0, ids.shape[1]:]
    if o.eos_token_id is not None:  # drop the padding after an early end of text
        hits = (new == o.eos_token_id).nonzero()
        if len(hits):
            new = new[: int(hits[0]) + 1]
    return new


def _processors(o: DecodingOptions):
    from transformers import LogitsProcessorList, NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    procs = LogitsProcessorList()
    if o.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(o.repetition_penalty))
    if o.no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGramLogitsProcessor(o.no_repeat_ngram_size))
    return procs


def contrastive_search(model: torch.nn.Module, ids: torch.Tensor, o: DecodingOptions) -> torch.Tensor:
    """Contrastive search (Su et al. 2022) without a key/value cache.

    At each step the ``k`` most probable next tokens ``v`` (after the repetition processors)
    are scored by ``(1 - alpha) * p(v | x) - alpha * max_j cos(h_v, h_j)``, where ``h_v`` is
    the last layer's hidden state at ``v`` and ``h_j`` those of every earlier position; the
    best one is kept. All ``k`` continuations run as one batch whose chosen row also gives
    the next step's distribution, so a step costs one forward of ``k`` sequences.

    Args:
        model: causal LM in eval mode (called with ``output_hidden_states=True``).
        ids: (1, T) prompt.
        o: options (``top_k`` candidates, default 4; ``penalty_alpha``; ``eos_token_id``).

    Returns:
        (N,) generated ids, N <= ``o.max_new_tokens``.
    """
    k = o.top_k or 4
    alpha = o.penalty_alpha
    procs = _processors(o)
    out = model(ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
    logits = out.logits[:, -1]  # (1, V)
    context_h = out.hidden_states[-1][0]  # (T, H)
    seq = ids
    for _ in range(o.max_new_tokens):
        probs = torch.softmax(procs(seq, logits.float()), dim=-1)[0]  # (V,)
        k_eff = min(k, int((probs > 0).sum()))
        top_p, top_v = probs.topk(k_eff)  # (k,), (k,)
        cand = torch.cat([seq.expand(k_eff, -1), top_v[:, None]], dim=1)  # (k, T+1)
        cand_out = model(cand, attention_mask=torch.ones_like(cand), output_hidden_states=True)
        cand_h = cand_out.hidden_states[-1][:, -1]  # (k, H)
        sim = torch.nn.functional.cosine_similarity(cand_h[:, None, :], context_h[None, :, :], dim=-1)  # (k, T)
        score = (1 - alpha) * top_p - alpha * sim.max(dim=1).values
        best = int(score.argmax())  # ties go to the more probable candidate (topk is sorted)
        seq = cand[best:best + 1]
        logits = cand_out.logits[best:best + 1, -1]
        context_h = cand_out.hidden_states[-1][best]  # (T+1, H)
        if o.eos_token_id is not None and int(top_v[best]) == o.eos_token_id:
            break
    return seq[0, ids.shape[1]:]
