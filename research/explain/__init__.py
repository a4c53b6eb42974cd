"""Explanations: Grad-CAM computed with jax.grad, feature maps, and their pictures."""
from research.explain.gradcam import LayerError, gradcam
from research.explain.overlay import save_overlay
