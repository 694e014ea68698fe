"""Simulation: a synthetic LAT data set written in the real file formats
(:mod:`fermixr.simulate.synthetic`, the built-in example's data) and a small analytic region
of interest with known truth for likelihood and fitter tests (:mod:`fermixr.simulate.toy`).

It sits after ``likelihood`` in the layer order (the toy ROI builds likelihood costs) and
grows into Fermipy's ``simulate_roi``.  The submodules are not imported here.
"""
