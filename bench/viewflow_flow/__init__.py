"""A small django-viewflow 2.x project for bench/bench_viewflow.py: its settings and one flow.

The app has no models of its own: the flow keeps its state in viewflow's Process and Task tables.
It runs only in the benchmark's own virtual environment (var/bench-viewflow-venv), never in EAM's.
"""
