"""affectlab.training."""
