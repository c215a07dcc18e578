"""What the model files promise, shared by export, runtime and calibration (torch-free).

The lowest layer with ``novum.errors``, ``novum.io``, ``novum.config``, ``novum.mesh`` and
``novum.bundled``: it imports none of torch, ``novum.export``, ``novum.runtime`` or
``novum.calibration`` (``docs/architecture.md``, "Layers").

- :mod:`~novum.contracts.schema`: schemas and bounded parsers for files that travel with models
  (one-line ``SchemaError``s naming the file and the field);
- :mod:`~novum.contracts.onnx_file`: the ONNX graph's I/O names, ``metadata_props`` (write and
  read), files with external data, atomic placement;
- :mod:`~novum.contracts.sidecar`: the JSON sidecar next to a TensorRT plan (write, read, check);
- :mod:`~novum.contracts.framing`: frames -> model input (centred crop / roi, resize, zero padding);
- :mod:`~novum.contracts.images`: which files are images, and listing them from a folder or a glob;
- :mod:`~novum.contracts.cache`: the user cache folder (``$NOVUM_CACHE``).
"""
