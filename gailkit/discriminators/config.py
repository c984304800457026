"""The discriminator's options, one field each."""

from __future__ import annotations

import dataclasses

from gailkit.configs import doc
from gailkit.errors import UsageError

__all__ = ["DiscriminatorConfig", "REWARD_TYPES", "INPUT_TYPES", "PENALTIES"]

REWARD_TYPES = ("gail", "log_d", "logit", "shaped")
INPUT_TYPES = ("sa", "ss", "s", "sas")
PENALTIES = ("none", "wgan-gp", "r1")


@dataclasses.dataclass
class DiscriminatorConfig:
    """Discriminator / reward-net options (``gailkit imitate --disc-...`` flags mirror them)."""

    inputs: str = dataclasses.field(default="sa", metadata=doc(
        "what D sees: sa = (s, a), ss = (s, s'), s = state only, sas = (s, a, s')"))
    hidden: str = dataclasses.field(default="64,64", metadata=doc("hidden layer sizes, comma-separated"))
    reward: str | None = dataclasses.field(default=None, metadata=doc(
        "reward from D: gail = -log(1 - D) (positive), log_d = log D (negative), logit = log D - log(1 - D), "
        "shaped = AIRL's f; default: for AIRL shaped (f alone; the policy's entropy bonus is PPO's --ent-coef, "
        "as in the imitation library: logit = f - log pi adds a temperature-1 entropy bonus that swamps f), but "
        "gail with an absorbing state (f is unbounded below on every state only the policy visits, so off-expert "
        "states can sink below the absorbing state and dying becomes a relief; -log(1 - D) ties them all at 0); "
        "logit for DAC; gail otherwise"))
    airl: bool = dataclasses.field(default=False, metadata=doc(
        "AIRL form: logit = g(s, a) + gamma * h(s') - h(s) - log pi(a|s)"))
    gamma: float = dataclasses.field(default=0.99, metadata=doc(
        "discount of the AIRL shaping term (imitation runs set it to the policy's --gamma)"))
    absorbing: bool | None = dataclasses.field(default=None, metadata=doc(
        "AIRL: observations end with AbsorbingStateWrapper's flag, and the potential h is 0 in the "
        "absorbing state (terminal for the shaping term, so it telescopes within the episode instead of paying "
        "gamma * h(absorbing) once for dying); default: the run's --absorbing"))
    gradient_penalty: str = dataclasses.field(default="r1", metadata=doc("none, wgan-gp or r1"))
    gp_weight: float = dataclasses.field(default=1.0, metadata=doc(
        "gradient penalty weight (R1 adds weight/2 * E||grad||^2 on expert samples)"))
    spectral_norm: bool = dataclasses.field(default=False, metadata=doc("spectral normalisation on every layer"))
    vail: bool = dataclasses.field(default=False, metadata=doc("variational information bottleneck (VAIL)"))
    vail_latent: int = dataclasses.field(default=8, metadata=doc("VAIL latent size"))
    vail_target_kl: float = dataclasses.field(default=0.5, metadata=doc("VAIL information constraint I_c (nats)"))
    vail_beta_lr: float = dataclasses.field(default=1e-3, metadata=doc("dual step size of VAIL's adaptive beta"))
    label_smoothing: float = dataclasses.field(default=0.0, metadata=doc("targets 1 - e (expert) and e (policy)"))
    entropy_weight: float = dataclasses.field(default=0.0, metadata=doc("bonus on the entropy of D's prediction"))
    normalize_inputs: bool = dataclasses.field(default=True, metadata=doc("running mean/std input normalisation"))
    lr: float = dataclasses.field(default=1e-3, metadata=doc("Adam learning rate"))
    batch_size: int = dataclasses.field(default=256, metadata=doc("expert and policy samples per update, each"))
    seed: int = dataclasses.field(default=0, metadata=doc("seed of the weights and penalty noise"))

    def __post_init__(self) -> None:
        for name, allowed in (("inputs", INPUT_TYPES), ("reward", REWARD_TYPES),
                              ("gradient_penalty", PENALTIES)):
            if getattr(self, name) not in allowed and not (name == "reward" and self.reward is None):
                raise UsageError(f"discriminator {name}={getattr(self, name)!r}; choose one of {allowed}")
        if self.airl and self.vail:
            raise UsageError("airl and vail cannot be combined: AIRL's shaped form has no bottleneck here")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise UsageError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.batch_size < 1:
            raise UsageError(f"batch_size must be positive, got {self.batch_size}")
        _ = self.hidden_sizes  # raises on a malformed string

    @property
    def reward_kind(self) -> str:
        """``reward`` with its default resolved: for AIRL gail with an absorbing state, else shaped; gail otherwise."""
        if self.reward is not None:
            return self.reward
        return "shaped" if self.airl and not self.absorbing else "gail"

    @property
    def hidden_sizes(self) -> list[int]:
        try:
            sizes = [int(h) for h in str(self.hidden).split(",") if h.strip()]
        except ValueError:
            raise UsageError(f"hidden={self.hidden!r}: give comma-separated integers, e.g. 64,64") from None
        if any(h < 1 for h in sizes):
            raise UsageError(f"hidden={self.hidden!r}: sizes must be positive")
        return sizes
