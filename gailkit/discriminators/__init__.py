"""Discriminators: the reward nets of adversarial imitation (GAIL, AIRL, VAIL)."""

from gailkit.discriminators.config import DiscriminatorConfig
from gailkit.discriminators.discriminator import DiscBatch, Discriminator

__all__ = ["DiscBatch", "Discriminator", "DiscriminatorConfig"]
