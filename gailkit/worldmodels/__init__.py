"""World models as agent parts: V (ConvVAE), M (MDN-RNN with reward and done heads), dreams.

Names load on first use (see :mod:`gailkit.lazy`), so the presets are read without torch.
"""

from gailkit.lazy import lazy_exports

_WHERE = {
    "BatchedDream": "gailkit.worldmodels.dream",
    "ConvVAE": "gailkit.nn.vae",
    "DreamEnv": "gailkit.worldmodels.dream",
    "DreamVecEnv": "gailkit.worldmodels.vec_dream",
    "MDNRNN": "gailkit.worldmodels.mdn_rnn",
    "MDNOutput": "gailkit.worldmodels.mdn_rnn",
    "MDNRNNConfig": "gailkit.worldmodels.mdn_rnn",
    "WorldModel": "gailkit.worldmodels.model",
    "elbo_loss": "gailkit.nn.vae",
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
