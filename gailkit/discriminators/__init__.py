"""Discriminators: the reward nets of adversarial imitation (GAIL, AIRL, VAIL).

``DiscriminatorConfig`` is light; the networks (torch) load on first use.
"""

from gailkit.discriminators.config import DiscriminatorConfig
from gailkit.lazy import lazy_exports

__all__ = ["DiscBatch", "Discriminator", "DiscriminatorConfig"]
__getattr__, __dir__ = lazy_exports(__name__, {"DiscBatch": "gailkit.discriminators.discriminator",
                                               "Discriminator": "gailkit.discriminators.discriminator"})
