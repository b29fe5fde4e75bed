"""Hyperparameter search: the planner (`planner`: trials as child experiments, adaptive methods
told each result), Optuna's storages, samplers and pruners (`study`), what a trial reports and
when it is pruned (`trial`), the analytic objective of the course's HPO exercise
(`objectives`), and the plots (`plots`)."""
