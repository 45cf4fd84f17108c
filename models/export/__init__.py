"""Development scripts that derive models from the manifest's weights (need the `onnx` package)."""
