"""Paper figures: one script per figure, each reading its config in ``paper_figures/configs/``.

``python -m paper_figures [--quick] [--only NAME ...]`` (``make figures``) rebuilds them into
``paper_figures/out/`` (PDF and PNG); see ``paper_figures/common.py`` for the caching of runs.
"""
