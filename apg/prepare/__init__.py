"""Preparation: the rows and columns by role (``features``) and the clustering matrix
(``preprocessing``: imputation, encoding, scaling, PCA), whole or a column at a time.

Produces a :class:`~apg.prepare.preprocessing.Prepared`. May import: errors, sources, config.
"""
