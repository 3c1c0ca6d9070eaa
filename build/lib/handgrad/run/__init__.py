"""Training runs: settings, the training loop of both engines, run directories, engine
comparisons, sweeps and the whole exercise."""
