"""``gailkit/ChoraleComposer-v0``: write a four-part chorale token by token, rewarded by what it is given.

The agent writes the chorale tokens of :mod:`gailkit.data.chorales` in their time-major order
(soprano, alto, tenor, bass for each sixteenth step). An episode is ``n_bars`` bars of 16
sixteenths, ``64 * n_bars`` tokens, and always ends (``terminated``) after the last one.

Invalid tokens are *penalised and repaired*, deterministically: a ``HOLD`` for a voice that has
no sounding note (at the start, or after a ``REST``) and the specials ``BOS`` / ``EOS`` / ``PAD``
are written as ``REST`` and cost ``invalid_penalty``. ``info["action_mask"]`` (``(VOCAB_SIZE,)``
int8, 1 = valid) says which tokens are valid next, for agents that mask their logits.

Everything else in the reward is handed in as an object (this module imports nothing from
generators or agents):

* ``rules`` (:class:`StepRules`): asked after every token what that token earns, e.g. the
  music-theory game :class:`gailkit.generators.music.theory.TheoryRules`; what it returns
  beside the reward joins ``info``;
* ``reward_model`` (:class:`RewardModel`): at the end of the episode, ``disc_weight *
  score(voices)``, e.g. ``log D`` of a
  :class:`gailkit.generators.music.composer_disc.ChoraleDiscriminator` (the GAIL idea applied
  to composition, as in SeqGAN).

The registered id is built by :func:`gailkit.generators.music.composer_env.make_composer_env`,
which passes the theory rules and loads a critic directory: ``gymnasium.make(
"gailkit/ChoraleComposer-v0", n_bars=2, reward_model=DIR_OR_OBJECT, key="C major", ...)``.

:class:`ComposerState` is the whole game on a batch of ``B`` pieces written in lockstep; the
env is that state with ``B = 1``, and the PPO fine-tuning in
:mod:`gailkit.generators.music.composer` steps the same class with ``B`` in the hundreds.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np

from gailkit.data.chorales import BOS, HOLD, N_VOICES, PAD, REST, VOCAB_SIZE
from gailkit.errors import UsageError

__all__ = ["MAX_BARS", "STEPS_PER_BAR", "ChoraleComposerEnv", "ComposerState", "RewardModel", "StepRules"]

STEPS_PER_BAR = 16
MAX_BARS = 16  # the registered time limit is this many bars of tokens


class RewardModel(Protocol):
    """What the env needs of a critic: a score per piece, higher = more like Bach."""

    def score(self, voices: np.ndarray) -> np.ndarray:
        """``(B, 4, T)`` int voices -> ``(B,)`` float reward (e.g. ``log D``)."""
        ...


class StepRules(Protocol):
    """Per-token reward rules of a :class:`ComposerState` (e.g. music theory)."""

    def reward(self, state: ComposerState) -> tuple[np.ndarray, dict[str, Any]]:
        """Called after every token: ``(B,)`` reward of the token just written, and extra info."""
        ...


class ComposerState:
    """``B`` pieces of ``n_bars`` bars written in lockstep, one token per call to :meth:`step`.

    Args:
        batch: pieces ``B``.
        n_bars: bars per piece.
        rules: per-token reward rules (None: only the invalid-token penalty).
        invalid_penalty: reward for an invalid token (written as ``REST``) is ``-invalid_penalty``.

    Attributes:
        tokens: ``(B, L)`` int64, the tokens written so far, ``PAD`` after ``position``.
        pitch: ``(B, 4, n_steps)`` int64 sounding MIDI pitch, -1 for silence (and not yet written).
        onset: ``(B, 4, n_steps)`` bool, a note starts here.
        position: number of tokens written (the same for every piece).
    """

    def __init__(self, batch: int, *, n_bars: int = 2, rules: StepRules | None = None,
                 invalid_penalty: float = 1.0) -> None:
        if not 1 <= n_bars <= MAX_BARS:
            raise UsageError(f"n_bars must be in 1..{MAX_BARS}, got {n_bars}")
        if batch < 1:
            raise UsageError(f"batch must be >= 1, got {batch}")
        if rules is not None and not callable(getattr(rules, "reward", None)):
            raise TypeError(f"rules must have a reward(state) method, got {type(rules).__name__}")
        self.batch, self.n_bars, self.rules, self.invalid_penalty = batch, n_bars, rules, float(invalid_penalty)
        self.n_steps = n_bars * STEPS_PER_BAR
        self.length = self.n_steps * N_VOICES
        self.reset()

    def reset(self) -> None:
        self.tokens = np.full((self.batch, self.length), PAD, dtype=np.int64)
        self.pitch = np.full((self.batch, N_VOICES, self.n_steps), -1, dtype=np.int64)
        self.onset = np.zeros((self.batch, N_VOICES, self.n_steps), dtype=bool)
        self.position = 0

    @property
    def done(self) -> bool:
        return self.position >= self.length

    def action_mask(self) -> np.ndarray:
        """``(B, VOCAB_SIZE)`` bool: the tokens that are valid next."""
        mask = np.zeros((self.batch, VOCAB_SIZE), dtype=bool)
        if self.done:
            return mask
        mask[:, :HOLD] = True
        mask[:, REST] = True
        step, voice = divmod(self.position, N_VOICES)
        mask[:, HOLD] = self.pitch[:, voice, step - 1] >= 0 if step > 0 else False
        return mask

    def voices(self) -> np.ndarray:
        """``(B, 4, n_steps)`` int16 voices of what is written so far (PAD where not yet)."""
        return self.tokens.reshape(self.batch, self.n_steps, N_VOICES).transpose(0, 2, 1).astype(np.int16)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Write one token per piece.

        Args:
            actions: ``(B,)`` token ids.

        Returns:
            ``(B,)`` float64 reward (the invalid-token penalty plus what ``rules`` pays) and a dict
            with ``invalid`` ``(B,)`` bool and the rules' extra info.
        """
        if self.done:
            raise RuntimeError("the pieces are complete; call reset() first")
        actions = np.asarray(actions, dtype=np.int64).reshape(-1)
        if actions.shape != (self.batch,):
            raise ValueError(f"expected {self.batch} actions, got shape {actions.shape}")
        valid = self.action_mask()[np.arange(self.batch), np.clip(actions, 0, VOCAB_SIZE - 1)]
        valid &= (actions >= 0) & (actions < VOCAB_SIZE)
        written = np.where(valid, actions, REST)
        step, voice = divmod(self.position, N_VOICES)
        self.tokens[:, self.position] = written
        held = self.pitch[:, voice, step - 1] if step > 0 else np.full(self.batch, -1)
        self.pitch[:, voice, step] = np.where(written < HOLD, written, np.where(written == HOLD, held, -1))
        self.onset[:, voice, step] = written < HOLD
        self.position += 1
        reward = -self.invalid_penalty * (~valid)
        info: dict[str, Any] = {"invalid": ~valid}
        if self.rules is not None:
            earned, extra = self.rules.reward(self)
            reward = reward + earned
            info |= extra
        return reward.astype(np.float64), info


def _first(value: Any) -> Any:
    """Piece 0 of a batched info value: ``(B, ...)`` array -> its first row (bool / float for scalars)."""
    if isinstance(value, dict):
        return {k: _first(v) for k, v in value.items()}
    row = np.asarray(value)[0]
    if row.ndim:
        return row
    return bool(row) if row.dtype == bool else float(row)


class ChoraleComposerEnv(gym.Env):
    """Compose ``n_bars`` bars of a four-part chorale, one token per step (see the module doc).

    Observation: ``{"tokens": (1 + L,) int64`` = ``BOS`` then the tokens written, ``PAD`` after;
    ``"position": Discrete(L + 1)}`` = tokens written. Action: ``Discrete(VOCAB_SIZE)``.

    Args:
        n_bars: bars per episode (``L = 64 * n_bars`` tokens).
        rules: per-token reward rules (:class:`StepRules`), None for none.
        reward_model: critic for the episode-end reward (:class:`RewardModel`), None for none.
        disc_weight: weight of the critic's score.
        invalid_penalty: reward for an invalid token (written as ``REST``) is ``-invalid_penalty``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, *, n_bars: int = 2, rules: StepRules | None = None, reward_model: RewardModel | None = None,
                 disc_weight: float = 1.0, invalid_penalty: float = 1.0) -> None:
        if reward_model is not None and not callable(getattr(reward_model, "score", None)):
            raise TypeError(f"reward_model must be None or an object with score(voices), got "
                            f"{type(reward_model).__name__}; to load a saved critic directory use "
                            f"gymnasium.make('gailkit/ChoraleComposer-v0', reward_model=DIR)")
        self.state = ComposerState(1, n_bars=n_bars, rules=rules, invalid_penalty=invalid_penalty)
        self.reward_model = reward_model
        self.disc_weight = float(disc_weight)
        length = self.state.length
        self.observation_space = gym.spaces.Dict({
            "tokens": gym.spaces.Box(0, VOCAB_SIZE - 1, shape=(1 + length,), dtype=np.int64),
            "position": gym.spaces.Discrete(length + 1),
        })
        self.action_space = gym.spaces.Discrete(VOCAB_SIZE)

    def _obs(self) -> dict[str, Any]:
        return {"tokens": np.concatenate([[BOS], self.state.tokens[0]]).astype(np.int64),
                "position": int(self.state.position)}

    def _info(self) -> dict[str, Any]:
        return {"action_mask": self.state.action_mask()[0].astype(np.int8)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)  # the game itself has no randomness
        self.state.reset()
        return self._obs(), self._info()

    def step(self, action):
        reward, extra = self.state.step(np.array([int(action)]))
        info = self._info() | {k: _first(v) for k, v in extra.items()}
        r = float(reward[0])
        if self.state.done:
            if self.reward_model is not None and self.disc_weight != 0:
                score = float(np.asarray(self.reward_model.score(self.state.voices()))[0])
                info["disc_score"] = score
                r += self.disc_weight * score
            info["voices"] = self.state.voices()[0]
        return self._obs(), r, self.state.done, False, info
