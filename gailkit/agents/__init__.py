"""Agents: experts, behaviour cloning and the imitation algorithms (BC, GAIL, AIRL, DAC, SQIL, ...).

Each algorithm is one module registering a run class by name (:mod:`gailkit.agents.registry`);
:func:`imitate` trains any of them from its config. Names load on first use (see
:mod:`gailkit.lazy`): the expert configs need no torch.
"""

from gailkit.lazy import lazy_exports

_WHERE = {
    "BC": "gailkit.agents.cloning",
    "BCConfig": "gailkit.agents.cloning",
    "pretrain_policy": "gailkit.agents.cloning",
    "BehaviourCloning": "gailkit.agents.bc",
    "BCRunConfig": "gailkit.agents.bc",
    "GAIL": "gailkit.agents.gail",
    "GAILConfig": "gailkit.agents.gail",
    "AIRL": "gailkit.agents.gail",
    "AIRLConfig": "gailkit.agents.gail",
    "DreamGAIL": "gailkit.agents.gail",
    "DreamGAILConfig": "gailkit.agents.gail",
    "DAC": "gailkit.agents.dac",
    "DACConfig": "gailkit.agents.dac",
    "SQIL": "gailkit.agents.sqil",
    "SQILConfig": "gailkit.agents.sqil",
    "PPOOnReward": "gailkit.agents.transfer",
    "PPOOnRewardConfig": "gailkit.agents.transfer",
    "PRESETS": "gailkit.agents.experts",
    "Expert": "gailkit.agents.experts",
    "collect_demos": "gailkit.agents.experts",
    "evaluate_policy": "gailkit.agents.experts",
    "load_expert": "gailkit.agents.experts",
    "train_expert": "gailkit.agents.experts",
    "CollectConfig": "gailkit.agents.configs",
    "ExpertConfig": "gailkit.agents.configs",
    "algorithms": "gailkit.agents.registry",
    "register": "gailkit.agents.registry",
    "evaluate_run": "gailkit.agents.imitate",
    "imitate": "gailkit.agents.imitate",
    "imitate_command": "gailkit.agents.imitate",
    "load_run": "gailkit.agents.imitate",
    "summarise_runs": "gailkit.agents.imitate",
    "tuned": "gailkit.agents.tuned",
    "tuned_run": "gailkit.agents.tuned",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
