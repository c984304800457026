"""gailkit: reinforcement learning with generative parts.

Importing the package registers the ``gailkit/...`` Gymnasium ids (see ``gailkit.envs``).
"""

__version__ = "0.1.0"

from gailkit import envs as envs  # noqa: E402  (registers ids on import)

__all__ = ["__version__", "envs"]
