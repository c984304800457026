"""The registry of imitation algorithms: names, look-ups, one module per algorithm, run layout."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
from pathlib import Path

import pytest

from gailkit.agents.registry import algorithm, algorithm_of, algorithms, register
from gailkit.errors import UsageError

EXPECTED = {"airl", "bc", "dac", "gail", "ppo-on-reward", "sqil"}


def test_every_algorithm_is_registered_with_a_kw_only_config():
    found = algorithms()
    assert EXPECTED <= set(found), f"missing {sorted(EXPECTED - set(found))}"
    assert list(found) == sorted(found)
    for name, cls in found.items():
        assert cls.name == name, (name, cls)
        assert dataclasses.is_dataclass(cls.Config), name
        positional = [f.name for f in dataclasses.fields(cls.Config) if not f.kw_only]
        assert not positional, f"{name}: {positional} are not keyword-only"
        for part, part_cls in cls.parts.items():
            assert dataclasses.is_dataclass(part_cls), (name, part)
    # each config belongs to exactly one algorithm (algorithm_of compares types exactly)
    assert len({cls.Config for cls in found.values()}) == len(found)


def test_look_ups_by_name_and_by_config(cartpole_demos, tmp_path):
    from gailkit.agents.bc import BCRunConfig, BehaviourCloning
    from gailkit.agents.gail import AIRL, GAIL, AIRLConfig, GAILConfig
    from gailkit.agents.sqil import SQIL, SQILConfig

    assert algorithm("gail") is GAIL and algorithm("airl") is AIRL and algorithm("sqil") is SQIL
    with pytest.raises(UsageError, match=r"unknown imitation algorithm 'nope'; choose one of airl, bc, dac, "
                                         r"dream-gail, gail, "
                                         r"ppo-on-reward, sqil"):
        algorithm("nope")
    common = dict(env="CartPole-v1", demos=cartpole_demos, out=tmp_path)
    assert algorithm_of(GAILConfig(**common)) is GAIL
    assert algorithm_of(AIRLConfig(**common)) is AIRL  # a subclass's config is not its parent's
    assert algorithm_of(SQILConfig(**common)) is SQIL
    assert algorithm_of(BCRunConfig(**common)) is BehaviourCloning
    with pytest.raises(TypeError, match="config of no registered imitation algorithm"):
        algorithm_of(object())


def test_register_refuses_a_second_class_under_a_name_and_a_class_without_config():
    class Impostor:
        Config = dict

    with pytest.raises(ValueError, match="'gail' is registered twice"):
        register("gail")(Impostor)

    class NoConfig:
        pass

    with pytest.raises(TypeError, match="needs a Config dataclass"):
        register("no-config")(NoConfig)
    assert "no-config" not in algorithms() and algorithms()["gail"] is not Impostor


# ----- one module per algorithm -----------------------------------------------------------------
def imported_modules(source: str, module: str) -> dict[str, int]:
    """``{module: line}`` of every import in ``source`` (at any depth), names imported from a
    package mapped to their modules: ``from gailkit.agents import GAIL`` is ``gailkit.agents.gail``
    (the package's lazy exports), ``from gailkit.agents import gail`` too."""
    agents = importlib.import_module("gailkit.agents")
    lazy = getattr(agents, "_WHERE", {})
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.setdefault(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level]
                base = ".".join(anchor + ([base] if base else []))
            found.setdefault(base, node.lineno)
            for alias in node.names:
                if base == "gailkit.agents" and alias.name in lazy:
                    found.setdefault(lazy[alias.name], node.lineno)
                else:
                    found.setdefault(f"{base}.{alias.name}", node.lineno)
    return found


def sibling_imports(modules: set[str]) -> list[str]:
    wrong = []
    for module in sorted(modules):
        path = Path(importlib.import_module(module).__file__)
        for target, line in imported_modules(path.read_text(encoding="utf-8"), module).items():
            hit = next((m for m in modules if m != module and (target == m or target.startswith(m + "."))), None)
            if hit:
                wrong.append(f"{path.name}:{line} imports {hit}")
    return wrong


def test_the_sibling_check_sees_every_form_of_import():
    for source in ("from gailkit.agents.gail import GAIL", "import gailkit.agents.gail",
                   "from gailkit.agents import GAILConfig", "from . import gail", "from .gail import AIRL",
                   "def f():\n    from gailkit.agents import gail\n"):
        assert "gailkit.agents.gail" in imported_modules(source, "gailkit.agents.dac"), source
    assert "gailkit.agents.gail" not in imported_modules("from gailkit.agents.adversarial import AdversarialRun",
                                                         "gailkit.agents.dac")


def test_no_algorithm_module_imports_another():
    """An algorithm is one file: it builds on the shared bases (base, adversarial, onpolicy,
    offpolicy, cloning, ...), never on a sibling algorithm (gail.py holds GAIL and AIRL: one module)."""
    modules = {cls.__module__ for cls in algorithms().values()}
    assert {"gailkit.agents.gail", "gailkit.agents.dac", "gailkit.agents.sqil", "gailkit.agents.bc",
            "gailkit.agents.transfer"} <= modules, modules
    wrong = sibling_imports(modules)
    assert not wrong, "algorithm modules importing each other (move the shared piece to a base module):\n" + \
        "\n".join(wrong)


# ----- imitate() and the run directory ------------------------------------------------------------
def test_imitate_refuses_a_part_the_algorithm_does_not_have(cartpole_demos, tmp_path):
    from gailkit.agents.cloning import BCConfig
    from gailkit.agents.gail import GAILConfig
    from gailkit.agents.imitate import imitate

    out = tmp_path / "run"
    with pytest.raises(UsageError, match="gail has no part bc; its parts: disc"):
        imitate(GAILConfig(env="CartPole-v1", demos=cartpole_demos, out=out), bc=BCConfig())
    assert not out.exists()


def test_a_bc_run_directory_holds_its_config_and_part(cartpole_demos, tmp_path):
    from gailkit.agents.bc import BCRunConfig
    from gailkit.agents.cloning import BCConfig
    from gailkit.agents.imitate import evaluate_run, imitate, load_run

    out = tmp_path / "bc"
    result = imitate(BCRunConfig(env="CartPole-v1", demos=cartpole_demos, out=out, seed=3, progress=False,
                                 eval_episodes=1), bc=BCConfig(steps=20, batch_size=32))
    assert result["steps"] == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["algo"] == "bc" and meta["config"]["env"] == "CartPole-v1" and "steps" not in meta["config"]
    assert meta["bc"]["steps"] == 20 and meta["bc"]["batch_size"] == 32
    assert meta["bc"]["seed"] == 3, "the BC part takes the run's seed"
    assert "disc" not in meta and {"demos", "expert_return", "random_return", "versions"} <= set(meta)
    assert {"gailkit", "torch", "stable_baselines3"} <= set(meta["versions"]), meta["versions"]
    assert (out / "bc" / "policy.safetensors").is_file() and (out / "eval.json").is_file()
    run = load_run(out)
    assert run.name == "bc" and run.bc_config.steps == 20
    assert evaluate_run(out, episodes=1)["algo"] == "bc"
    with pytest.raises(UsageError, match="bc run, which has no checkpoint"):
        imitate(BCRunConfig(env="CartPole-v1", demos=cartpole_demos, out=out, progress=False), resume=True)
