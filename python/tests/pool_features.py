"""Reference pass rates for test pools: sixteenths (exact in f16), weak <= strong, from a fixed seed."""
import numpy as np


def reference_features(n, seed):
    rng = np.random.default_rng(seed)
    weak = rng.integers(0, 9, n) / 16
    strong = np.minimum(weak + rng.integers(0, 9, n) / 16, 1.0)
    return weak, strong
