"""The course autograder: a student's backward pass run in a sandbox on salted cases,
judged against autograd, with a diagnosis of the mistake (docs/grading.md)."""
