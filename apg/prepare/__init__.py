"""Preparation: the rows and columns by role (``features``; dates as days, ``dates``) and the
clustering matrix (``preprocessing``: imputation, transforms, scaling, flags, one-hot encoding,
redundant columns, PCA; the encodings' rules in ``encoding``), whole or a column at a time
(``columnwise``).

Produces a :class:`~apg.prepare.preprocessing.Prepared`. May import: errors, sources, config.
"""
