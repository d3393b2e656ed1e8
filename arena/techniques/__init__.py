"""Techniques, one module each: what a technique needs installed, why it cannot run on a platform or
model, and how it changes a model (base.py: the shared pieces and the Quantizer interface;
bitsandbytes.py, torchao.py: quantizers; attention.py, compilation.py, parallel.py,
onnxruntime.py). registry.py is the table of configurations that name them."""
