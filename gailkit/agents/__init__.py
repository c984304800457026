"""Agents: experts, behaviour cloning and adversarial imitation (GAIL, AIRL, DAC).

Names load on first use (see :mod:`gailkit.lazy`): the configs need no torch.
"""

from gailkit.lazy import lazy_exports

_WHERE = {
    "BC": "gailkit.agents.bc",
    "BCConfig": "gailkit.agents.bc",
    "pretrain_policy": "gailkit.agents.bc",
    "DAC": "gailkit.agents.dac",
    "PRESETS": "gailkit.agents.experts",
    "Expert": "gailkit.agents.experts",
    "collect_demos": "gailkit.agents.experts",
    "evaluate_policy": "gailkit.agents.experts",
    "load_expert": "gailkit.agents.experts",
    "train_expert": "gailkit.agents.experts",
    "CollectConfig": "gailkit.agents.configs",
    "ExpertConfig": "gailkit.agents.configs",
    "ImitationConfig": "gailkit.agents.configs",
    "evaluate_run": "gailkit.agents.imitate",
    "imitate": "gailkit.agents.imitate",
    "load_run": "gailkit.agents.imitate",
    "summarise_runs": "gailkit.agents.imitate",
    "AdversarialImitation": "gailkit.agents.imitation",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
