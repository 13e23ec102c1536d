"""ragsite: chat with a book."""

import os

# numpy's BLAS (OpenBLAS) spreads even a small matrix product over every core, and its
# threads then spin waiting for more: a search's late-interaction product (20 chunks'
# tokens, ragsite/rag/interaction.py) cost ~10 ms of CPU that way instead of ~1 ms on
# one thread. The server's cores belong to the event loop and onnxruntime, and numpy's
# products here are small. It must be set before numpy loads; an operator's value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
