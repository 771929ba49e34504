"""Exploratory data analysis of a MovieLens data set: statistics, figures and a self-contained HTML report.

    from movierec.eda import run_eda, summary_lines
    report = run_eda(dataset, "out/eda")      # eda.html, figures/*.png, tables/*.csv, summary.json
    print("\n".join(summary_lines(report)))

:mod:`movierec.eda.stats` holds the pure statistics (Gini, VIF, phi correlation, exact box plots from
histograms, ...), :mod:`movierec.eda.plots` the figures, :mod:`movierec.eda.sections` one function per section
of the report, :mod:`movierec.eda.render` the page, fragment and terminal summary, and :mod:`movierec.eda.explore`
the run (:func:`run_eda`) that ties them together.
matplotlib, seaborn and jinja2 are needed only to run the report (the ``study`` extra).
"""

from __future__ import annotations

from movierec.eda.explore import EdaReport, Figure, run_eda
from movierec.eda.render import eda_fragment, summary_lines

__all__ = ["EdaReport", "Figure", "eda_fragment", "run_eda", "summary_lines"]
