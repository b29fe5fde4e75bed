"""Experiments that fan out into children: the planner protocol and the types a host passes
(`base`), and the planners of k-fold (`kfold`), compare (`compare`) and bagging ensembles
(`ensemble`). Searches have their own package (`ml.search`); which planner a spec gets is
`ml.planners.planner_for`; `ml.local.LocalHost` runs fan-outs in this process."""
