"""novum.export: ONNX graphs (fp32 / fp16), TensorRT engines, verification against torch."""
