"""Quantization: post-training (`quantize.ptq`), quantization-aware training (`quantize.qat`) and the
numpy-only measurements `rnnt quantize` prints (`quantize.report`). TensorFlow is imported only by ptq/qat.
"""

from __future__ import annotations

from rnnt.lazy import lazy_getattr

_LAZY = {
    "configure_converter": "quantize.ptq",
    "calibration_samples": "quantize.ptq",
    "MODES": "quantize.ptq",
    "enable_fake_quant": "quantize.qat",
    "disable_fake_quant": "quantize.qat",
    "freeze_ranges": "quantize.qat",
    "fake_quant_disabled": "quantize.qat",
    "is_fake_quant_enabled": "quantize.qat",
    "chunk_latency": "quantize.report",
    "compare_transcripts": "quantize.report",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr("quantize", _LAZY)
