"""The chapters' experiments, one module per topic, so a notebook cell reads like the idea it shows.

Each module holds the experiment functions, figures and widget factories of one chapter (or a
pair of chapters); tests in ``tests/test_experiments_<module>.py`` hold them to what the text says.
Modules: ``newton`` (ch. 1), ``hessian_cost`` (ch. 2), ``quasi_newton_adam`` (ch. 3),
``momentum`` (ch. 4), ``regularization`` (ch. 5), ``kronecker`` (ch. 6), ``conditioning`` (ch. 7),
``evidence`` (ch. 8), ``diagnose`` (ch. 9), ``summary`` (ch. 10), ``claims`` (appendix).
"""
