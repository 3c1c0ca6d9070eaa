"""The problems a student's `backpropagation(model, y_true, y_pred)` is graded on.

Every case is a float32 `MLP` (the dtype of the exercise's model) with seeded weights, input
and targets. The cases are grouped, and each group carries points, so that partial work earns
partial credit:

| group             | what it covers                                                        |
|-------------------|-----------------------------------------------------------------------|
| single sample     | N = 1 as a batch (1, D), and one 1-D sample x (D,)                    |
| batch             | N = 7: dL/da must keep one row per sample                             |
| square layers     | H_l = H_{l-1}, where a transposed dL_dw has the right shape           |
| depth             | 1 to 6 layers                                                         |
| activations       | every activation handgrad has, as the hidden activation               |
| output activation | a non-identity activation on the last layer                           |

The architectures are public; the weights, inputs and targets are not: the grader draws a
secret salt per process (`grader.case_salt`), so that a submission cannot look up answers
computed ahead of time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from handgrad.check.reference import Problem, random_problem
from handgrad.engine.activations import ACTIVATIONS

POINTS = {"single sample": 15, "batch": 20, "square layers": 10, "depth": 25,
          "activations": 20, "output activation": 10}


@dataclass(frozen=True)
class Case:
    """One graded problem. batch = 0 means one 1-D sample x of shape (D,)."""

    group: str
    sizes: tuple[int, ...]
    activation: str
    batch: int
    out_activation: str = "identity"
    seed: int = 0

    @property
    def name(self) -> str:
        n = "x (D,)" if self.batch == 0 else f"N={self.batch}"
        out = "" if self.out_activation == "identity" else f" out={self.out_activation}"
        return f"{'-'.join(map(str, self.sizes))} {self.activation}{out} {n}"

    @property
    def samples(self) -> int:
        """How many samples the loss sums over (1 for a 1-D sample)."""
        return max(self.batch, 1)

    def problem(self, loss: str, salt: int = 0) -> Problem:
        """The float32 network, x and targets of this case under the secret `salt` (the same
        on every call with the same salt; salt 0 gives the public seeds)."""
        seed = self.seed if salt == 0 else (salt * 1_000_003 + self.seed) % 2**62
        return random_problem(list(self.sizes), self.activation, loss, self.samples,
                              seed, torch.float32, self.out_activation,
                              single=self.batch == 0)


def _cases() -> tuple[Case, ...]:
    cases = [
        Case("single sample", (5, 4, 3), "tanh", 1, seed=1),
        Case("single sample", (6, 5, 4, 3), "sigmoid", 1, seed=2),
        Case("single sample", (5, 4, 3), "tanh", 0, seed=3),
        Case("batch", (6, 5, 3), "relu", 7, seed=4),
        Case("batch", (5, 6, 4, 3), "tanh", 7, seed=5),
        Case("square layers", (4, 4, 4, 4), "tanh", 5, seed=6),
        Case("square layers", (3, 3), "relu", 5, seed=7),
    ]
    depth_acts = ("relu", "relu", "tanh", "sigmoid", "leaky_relu", "elu")
    widths = (5, 6, 5, 4, 6, 5, 4)
    for depth, act in enumerate(depth_acts, start=1):
        sizes = (*widths[:depth], 3)
        cases.append(Case("depth", sizes, act, 6, seed=10 + depth))
    for i, act in enumerate(sorted(ACTIVATIONS)):
        cases.append(Case("activations", (5, 6, 4), act, 6, seed=20 + i))
    cases.append(Case("output activation", (5, 4, 3), "relu", 6, "sigmoid", seed=30))
    cases.append(Case("output activation", (5, 4, 3), "tanh", 6, "tanh", seed=31))
    return tuple(cases)


CASES = _cases()
