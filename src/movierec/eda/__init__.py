"""Exploratory data analysis of a MovieLens data set: statistics, figures and a self-contained HTML report.

    from movierec.eda import run_eda, summary_lines
    report = run_eda(dataset, "out/eda")      # eda.html, figures/*.png, tables/*.csv, summary.json
    print("\n".join(summary_lines(report)))

:mod:`movierec.eda.stats` holds the pure statistics (Gini, VIF, phi correlation, exact box plots from
histograms, ...), :mod:`movierec.eda.plots` the figures and :mod:`movierec.eda.report` the run and the page.
matplotlib, seaborn and jinja2 are needed only to run the report (the ``study`` extra).
"""

from __future__ import annotations

from movierec.eda.report import EdaReport, Figure, eda_fragment, run_eda, summary_lines

__all__ = ["EdaReport", "Figure", "eda_fragment", "run_eda", "summary_lines"]
