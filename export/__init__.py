"""Export a trained RNNT to the one-file TFLite bundle (TensorFlow side). See docs/bundle.md.

    from export import load_run, export_bundle
    model, config, tokens, info = load_run("runs/base")
    report = export_bundle(model, tokens, config.features, "model.tflite")
"""

from __future__ import annotations

from rnnt.lazy import lazy_getattr

_LAZY = {
    "export_bundle": "export.tflite",
    "ExportReport": "export.tflite",
    "ExportError": "export.tflite",
    "StepModule": "export.tflite",
    "embed_metadata": "export.tflite",
    "check_ops": "export.tflite",
    "load_run": "export.checkpoint",
    "RunError": "export.checkpoint",
    "training_info": "export.checkpoint",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr("export", _LAZY)
