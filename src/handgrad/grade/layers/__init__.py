"""Grading CS231n-style layer functions (`--assignment layers`): a student's module defines
`affine_forward/backward`, `relu_…`, `batchnorm_…`, `layernorm_…`, `dropout_…`, `conv_…`,
`max_pool_…` and `softmax_loss`; each runs on salted cases in the same sandbox as the MLP
grader and is judged against float64 autograd, with a diagnosis of the layer's classic
mistakes (docs/grading.md, "The layers assignment")."""
