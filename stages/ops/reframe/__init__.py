"""The reframe op: crop keyframes and their interpolation, the target size, and crop-upscale-resize of
a chunk."""
