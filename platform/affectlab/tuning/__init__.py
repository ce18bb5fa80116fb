"""affectlab.tuning."""
