"""Explanations: Grad-CAM computed with jax.grad, and overlays."""
from research.explain.gradcam import LayerError, gradcam
from research.explain.overlay import save_overlay
