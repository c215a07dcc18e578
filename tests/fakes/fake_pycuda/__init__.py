"""Fake pycuda package: ``pycuda.driver`` (device memory as numpy byte buffers) and ``pycuda.autoprimaryctx``."""
