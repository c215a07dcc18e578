"""novum.runtime: sources, backends (TensorRT / ONNX Runtime / torch), pipeline, overlay, CLI.

Classification imports no torch: only the torch backend and the pose refiner import it, lazily.
"""
