"""Techniques, one module each: a technique's choice (the value a configuration names), what it needs
installed, why it cannot run on a platform or model, why it cannot be combined with the rest of a
configuration, and how it changes a model (base.py: the shared pieces and the Quantizer interface;
bitsandbytes.py, torchao.py: quantizers; attention.py, compilation.py, parallel.py,
onnxruntime.py). registry.py is the table of configurations, each a composition of their choices."""
