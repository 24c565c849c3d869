"""Adebayo et al., Sanity Checks for Saliency Maps (NeurIPS 2018): do an explanation's maps
change when the model's weights (model randomisation) or its training labels (data
randomisation) are randomised?

``randomize.py`` picks the layers and re-initialises them on a private copy of the model,
``maps.py`` computes the compared methods through an engine's public methods (this package
imports no other paper package), ``similarity.py`` scores a map against the original, and
``check.py`` runs the tests.
"""
