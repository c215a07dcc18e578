"""Fake ``pycuda.autoprimaryctx``: importing it retains and activates device 0's primary context."""
from fakes.fake_pycuda import driver as _driver

_driver.init()
device = _driver.Device(0)
context = device.retain_primary_context()
context.push()
