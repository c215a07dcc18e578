"""Serving with Triton Inference Server: ``novum-serve`` (a real local tritonserver running novum's
own runtime backends in its Python backend) and the model it serves (:mod:`.python_model`)."""
