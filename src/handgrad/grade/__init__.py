"""Grading a class's hand-written backward passes: `grader` orchestrates one submission,
`judge` judges it against the truth and classic mistakes of `mistakes`, `result` holds its
grade; `batch` grades a class (`collect` finds the submissions, `gradebook` keeps the
grades on disk); `sandbox/` runs the code confined; `layers/` is the layers assignment."""
