"""novum.calibration: calibration data readers and INT8 (Q/DQ) quantization of exported graphs."""
