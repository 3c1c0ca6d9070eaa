"""Grading a class's hand-written backward passes: `grader` orchestrates one submission,
`judge` judges it, `batch` grades a class, `sandbox/` runs the code confined."""
