"""The cohere op: temporal-coherence filters against flicker (flow-warped blending, motion-gated
average), stateful within a shot."""
