"""Celery tasks: take an experiment id, run `ml`, persist. Thin: no ML logic here."""
