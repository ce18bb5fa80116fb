"""affectlab.reporting."""
