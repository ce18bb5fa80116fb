"""affectlab.models."""
