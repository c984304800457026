"""World models as agent parts: V (ConvVAE), M (MDN-RNN with reward and done heads)."""

from gailkit.nn.vae import ConvVAE, elbo_loss
from gailkit.worldmodels.mdn_rnn import MDNRNN, MDNOutput, MDNRNNConfig

__all__ = ["ConvVAE", "MDNRNN", "MDNOutput", "MDNRNNConfig", "elbo_loss"]
