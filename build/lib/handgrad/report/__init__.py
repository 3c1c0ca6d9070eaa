"""Rendering results: tables, plots and the exercise's report.md."""
