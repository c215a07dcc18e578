"""novum.calibration: calibration data readers and INT8 (Q/DQ) quantization of exported graphs.

- :mod:`~novum.calibration.readers`: synthetic / folder / video frames, framed as the runtime frames them;
- :mod:`~novum.calibration.recipe`: what is quantized (the backbone) and the Q/DQ graph checks;
- :mod:`~novum.calibration.cache`: activation ranges cached next to the INT8 model;
- :mod:`~novum.calibration.gate`: INT8 vs fp32 on held-out frames;
- :mod:`~novum.calibration.quantize`: ``quantize_int8(fp32_onnx, out, calib=..., method=...)``.
"""
