"""Method: the paper's formulas as pure functions over tensors (scores, metrics, the noise loop, the projection and
its losses). Imports nothing of the layers above."""
