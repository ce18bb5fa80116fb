"""affectlab.features."""
