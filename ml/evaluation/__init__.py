"""Evaluation: metrics by task (`metrics`), the bias-variance diagnosis from learning curves with
advice (`diagnosis`), and the final evaluation of a run on its sealed test split with threshold
choice, baseline and predictions (`evaluate`)."""
