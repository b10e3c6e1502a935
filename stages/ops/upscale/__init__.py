"""The upscale op and its engines: the PyTorch upscaler (tiling, batching, precision, out-of-memory
back-off, the scale plan), the ncnn engine, and which model serves a scale."""
