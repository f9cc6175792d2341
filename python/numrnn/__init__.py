"""numrnn: RNN, LSTM and GRU with hand-written forward and BPTT in Numba, PyTorch's semantics and
parameter names, and no autograd framework underneath."""
from numrnn import losses, onnx_export, optim
from numrnn.blas import get_blas_threads, set_blas_threads
from numrnn.cells import GRUCell, LSTMCell, RNNCell
from numrnn.embedding import Embedding
from numrnn.language_model import LanguageModel
from numrnn.linear import Linear
from numrnn.recurrent import GRU, LSTM, RNN
from numrnn.serialize import WeightsFileError, load, save
from numrnn.tagger import Tagger

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Linear", "Embedding", "LanguageModel",
           "Tagger", "losses", "optim", "onnx_export", "save", "load", "WeightsFileError", "set_blas_threads",
           "get_blas_threads"]
