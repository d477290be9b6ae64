"""The search: every candidate clustering, its scores, eligibility and the winner.

``leaderboard`` runs the search (exact, or on a sample with everyone assigned afterwards);
the shared computations live beside it: ``kernels`` and ``trees_worker`` (one tree per linkage,
cut at every k), ``neighbors`` (one pair pass for every DBSCAN setting), ``silhouettes`` (many
candidates in one pass); ``clusters`` is the winner as an assignment rule, ``model_io`` its
stored arrays, ``streaming`` assigns files a batch at a time and ``scaleout`` runs the search
or the assignment on Dask.

Produces a :class:`~apg.search.leaderboard.SearchResult`. May import: errors, sources, config,
prepare.
"""
