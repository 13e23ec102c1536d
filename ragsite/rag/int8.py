"""The packaged model with int8 matrix products, derived on this machine from its file.

The packaged `model.onnx` stores its weights as int8 but computes in float32: the
graph dequantizes them when onnxruntime loads it, and every matrix product is a
float32 GEMM. Quantizing those products (onnxruntime's dynamic quantization: int8
weights per output channel, uint8 activations scaled per run) lets onnxruntime use
the CPU's integer dot-product instructions (VNNI): ~1.5x the throughput on this
project's 2-core machine (docs/benchmarks.md), with vectors at cosine ≥ 0.99 to the
packaged graph's (mean 0.998 on the Rust book's chunks).

The derivation is deterministic and takes ~2 s. Nothing is downloaded: the input is
the installed, hash-verified package file, and the recipe is this module. The result
is cached in `model_cache_dir()`, named by the packaged file's hash, the recipe and
the library versions; the name of a derived model (and so the embedding cache's key)
carries the derived file's own hash, so a different result is never mixed with
vectors of another.

Two choices keep a text's vector a property of the text alone, and accurate:
- activations are scaled per run, over the whole batch, so the embedder runs this
  graph one text at a time (with no padding that costs nothing: see `LocalEmbedder`);
- the feed-forward down-projections (1536 -> 384), whose inputs carry GELU's outliers,
  stay in float32: that halves the error for ~4 % of the speed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

RECIPE_VERSION = 1
# Weight shape [in, out] of the matrix products left in float32 (the FFN down-projection).
_FLOAT_PRODUCTS = ((1536, 384),)

_lock = threading.Lock()
_derived: dict[tuple[str, str], DerivedModel] = {}  # per process


@dataclass(frozen=True)
class DerivedModel:
    """The derived graph: a cached file, or the bytes when no cache folder is writable."""

    path: Path | None
    content: bytes | None
    sha256: str

    def session_source(self) -> str | bytes:
        """What `onnxruntime.InferenceSession` takes: a path or the serialised model."""
        return self.content if self.content is not None else str(self.path)


def model_cache_dir() -> Path:
    """Where derived models are kept: EMBEDDING_MODEL_CACHE, else the user's cache folder.

    Per machine, not per data folder: every process and test run shares one derivation.
    """
    configured = os.environ.get("EMBEDDING_MODEL_CACHE", "").strip()
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "ragsite" / "models"


def derived_model(source: Path, source_sha256: str) -> DerivedModel:
    """Return the int8-products graph of the verified packaged model at `source`.

    Built on first use and cached; a cached file whose hash does not match its record
    is built again. Raises PackageNotFoundError or ImportError without `onnx`, and
    onnxruntime's own errors.
    """
    import onnxruntime

    # The installed onnx's version without importing it (~0.5 s and ~30 MB per process):
    # only a derivation needs the package itself.
    name = (
        f"minilm-int8mm-r{RECIPE_VERSION}-{source_sha256[:16]}"
        f"-ort{onnxruntime.__version__}-onnx{importlib.metadata.version('onnx')}.onnx"
    )
    folder = model_cache_dir()
    target = folder / name
    record = target.with_suffix(".sha256")
    with _lock:
        known = _derived.get((str(target), source_sha256))
        if known is not None:
            return known
        derived = _read_cached(target, record) or _build(source, folder, target, record)
        _derived[(str(target), source_sha256)] = derived
        return derived


def _build(source: Path, folder: Path, target: Path, record: Path) -> DerivedModel:
    content = _derive(source)
    digest = hashlib.sha256(content).hexdigest()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(target, content)
        _write_atomic(record, digest.encode())
    except OSError as exc:
        logger.warning(
            "could not cache the derived embedding model in %s (%s); "
            "it is derived again by each process",
            folder,
            exc,
        )
        return DerivedModel(path=None, content=content, sha256=digest)
    logger.info("derived the int8 embedding graph into %s", target)
    return DerivedModel(path=target, content=None, sha256=digest)


def _read_cached(target: Path, record: Path) -> DerivedModel | None:
    try:
        expected = record.read_text().strip()
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
    except OSError:
        return None
    if digest != expected:
        logger.warning("the cached embedding graph %s is damaged; deriving it again", target)
        return None
    return DerivedModel(path=target, content=None, sha256=digest)


def _derive(source: Path) -> bytes:
    """Fold the packaged int8 weights to float32, then quantize the matrix products."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="ragsite-int8-") as work:
        folded = Path(work) / "folded.onnx"
        quantized = Path(work) / "int8.onnx"
        # Basic optimisations only (constant folding: int8 weights -> float32), so the
        # graph stays portable; the serving session applies the rest on this machine.
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        onnxruntime.InferenceSession(
            str(source), sess_options=options, providers=["CPUExecutionProvider"]
        )
        graph = onnx.load(str(folded))
        shapes = {item.name: tuple(item.dims) for item in graph.graph.initializer}
        kept_float = [
            node.name
            for node in graph.graph.node
            if node.op_type == "MatMul" and shapes.get(node.input[1]) in _FLOAT_PRODUCTS
        ]
        # The quantizer advises "pre-processing" on the root logger: not for this graph.
        root = logging.getLogger()
        root.addFilter(_quantizer_advice)
        try:
            quantize_dynamic(
                folded,
                quantized,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=kept_float,
            )
        finally:
            root.removeFilter(_quantizer_advice)
        return quantized.read_bytes()


def _quantizer_advice(record: logging.LogRecord) -> bool:
    return "onnxruntime" not in record.pathname


def _write_atomic(path: Path, content: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(temporary, 0o644)  # a cache other users of the machine may read
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
