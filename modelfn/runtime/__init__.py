"""Run-time inferencers. ``onnx_session`` wraps onnxruntime; nothing here imports build-time code."""
