"""Exporting a trained classifier: a serving function (uint8 images in, probabilities out)
written in portable formats, each run back and compared with JAX (parity)."""
