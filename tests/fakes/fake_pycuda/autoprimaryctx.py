"""Fake ``pycuda.autoprimaryctx``, as pycuda's: importing it initialises CUDA, retains device 0's
primary context and pushes it on the importing thread (pycuda pops it again at exit)."""
from fakes.fake_pycuda import driver as _driver

_driver.init()
device = _driver.Device(0)
context = device.retain_primary_context()
context.push()
