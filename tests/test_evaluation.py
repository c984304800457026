"""The one evaluation-seed convention, the one normalised score and the one version stamp."""

from __future__ import annotations

import inspect

import pytest

import gailkit
from gailkit.evaluation import EVAL_SEED, normalised_return
from gailkit.versions import versions


def test_normalised_return_is_zero_at_random_and_one_at_the_expert():
    assert normalised_return(20.0, 500.0, 20.0) == 0.0
    assert normalised_return(500.0, 500.0, 20.0) == 1.0
    assert normalised_return(260.0, 500.0, 20.0) == pytest.approx(0.5)
    assert normalised_return(-146.5, -146.5, -1282.0) == 1.0  # negative returns (Pendulum)
    for expert, random_return in ((None, 20.0), (500.0, None), (20.0, 20.0)):
        assert normalised_return(100.0, expert, random_return) is None


def test_every_library_evaluation_uses_the_evaluation_seeds():
    """Training seeds stay below EVAL_SEED; the CLI's expert eval defaults to it."""
    from gailkit.cli import ExpertEvalConfig
    from gailkit.worldmodels.real import evaluate_controller

    assert EVAL_SEED >= 2**20
    assert ExpertEvalConfig(expert="x").seed == EVAL_SEED
    assert inspect.signature(evaluate_controller).parameters["seed"].default == EVAL_SEED


def test_version_stamp_names_python_gailkit_and_the_core_libraries():
    stamp = versions("no-such-distribution")
    assert stamp["gailkit"] == gailkit.__version__
    assert {"python", "torch", "numpy", "gymnasium", "stable_baselines3"} <= set(stamp)
    assert "no-such-distribution" not in stamp and "no_such_distribution" not in stamp
