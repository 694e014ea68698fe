"""Matplotlib views of fermixr products.  Arrays and geometries in, ``Figure`` objects
out; nothing here computes a product, and nothing here touches pyplot's global state
(figures are built on their own Agg canvas, so a headless machine draws them as well)."""

from .residmap import residmap_figure
from .roi import counts_maps_figure, counts_spectrum_figure, save_figure, sky_image

__all__ = ["counts_maps_figure", "counts_spectrum_figure", "residmap_figure", "save_figure",
           "sky_image"]
