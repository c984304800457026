"""World models as agent parts: V (ConvVAE), M (MDN-RNN with reward and done heads), dreams."""

from gailkit.nn.vae import ConvVAE, elbo_loss
from gailkit.worldmodels.dream import BatchedDream, DreamEnv
from gailkit.worldmodels.mdn_rnn import MDNRNN, MDNOutput, MDNRNNConfig
from gailkit.worldmodels.model import WorldModel

__all__ = [
    "BatchedDream",
    "ConvVAE",
    "DreamEnv",
    "DreamVecEnv",
    "MDNRNN",
    "MDNOutput",
    "MDNRNNConfig",
    "WorldModel",
    "elbo_loss",
]


def __getattr__(name: str):
    """``DreamVecEnv`` on first use: it imports stable-baselines3, which the rest does not need."""
    if name == "DreamVecEnv":
        from gailkit.worldmodels.vec_dream import DreamVecEnv

        return DreamVecEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
