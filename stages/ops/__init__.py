"""Chunk operations: the op contract (``ChunkOp``, the per-frame ``FrameOp``), the one driver that runs an op over
a list of chunks through the chunk store, the one writer thread, the typed record set passed between steps, and the
registry of ops by name. The built-in ops (frames, upscale, interpolate, cohere, reframe) register in ``builtin``."""
