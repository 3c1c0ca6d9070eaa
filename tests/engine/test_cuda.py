"""The engine, the optimizers, training and the command line on a CUDA device.

Skipped where CUDA is not available (CI has no GPU); run on a GPU machine with
`python -m pytest tests/engine/test_cuda.py`. Everything is float64 and checked against autograd
and torch.optim on the same device, and against the CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from handgrad import MLP, backpropagation, gradcheck, optim
from handgrad.cli.main import main
from handgrad.engine.flat import flatten
from handgrad.run.config import TrainConfig
from handgrad.run.evaluate import evaluate_run
from handgrad.run.rundir import read_json
from handgrad.run.train import train
from support import activations, architectures, autograd_grads, losses, make_targets, rel_err

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
CUDA = torch.device("cuda")


@settings(max_examples=30)
@given(sizes=architectures(), activation=activations, loss=losses, N=st.integers(1, 33),
       seed=st.integers(0, 10_000))
def test_backpropagation_on_cuda_equals_autograd(sizes, activation, loss, N, seed):
    torch.manual_seed(seed)
    model = MLP(sizes, activation=activation, dtype=torch.float64).to(CUDA)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, sizes[0], generator=gen, dtype=torch.float64).to(CUDA)
    t = make_targets(loss, N, sizes[-1], gen).to(CUDA)
    expected = autograd_grads(model, x, t, loss)
    with torch.no_grad():
        y_pred = model(x)
    backpropagation(model, t, y_pred, loss=loss)
    for l, (dW, db) in enumerate(expected, start=1):
        assert model.dL_dw[l].device.type == "cuda"
        assert rel_err(model.dL_dw[l], dW) <= 1e-10, f"dL_dw[{l}]"
        assert rel_err(model.dL_db[l], db) <= 1e-10, f"dL_db[{l}]"


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("Adam", dict(lr=0.01, weight_decay=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
])
def test_optimizers_on_cuda_match_torch_optim(name, kwargs):
    """torch.optim picks its foreach implementation on CUDA: the trajectories still agree."""
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((4, 3), (3,), (7,))]
    runs = []
    for cls in (getattr(optim, name), getattr(torch.optim, name)):
        params = [p.clone().to(CUDA).requires_grad_() for p in start]
        opt = cls(params, **kwargs)
        for step in range(30):
            noise = torch.Generator().manual_seed(step)
            for p in params:
                p.grad = p.detach() * 0.3 + torch.randn(p.shape, generator=noise,
                                                        dtype=torch.float64).to(CUDA)
            opt.step()
        runs.append(params)
    for ours, theirs in zip(*runs, strict=True):
        assert rel_err(ours.detach(), theirs.detach()) <= 1e-12


def test_flat_buffer_on_cuda_keeps_nn_linear_layout():
    model = MLP([6, 5, 2], dtype=torch.float64).to(CUDA)
    before = [p.detach().clone() for p in model.parameters()]
    theta = flatten(model)
    assert theta.device.type == "cuda"
    assert model.weight(1).is_contiguous() and model.dL_dw[1].is_contiguous()
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.detach(), b)


@pytest.mark.parametrize("engine", ["manual", "autograd"])
def test_training_on_cuda_matches_the_cpu_in_float64(digits, engine):
    """Same start, same batches: the GPU's curve and weights are the CPU's to rounding."""
    results = {}
    for device in ("cpu", "cuda"):
        config = TrainConfig(dataset="digits", hidden=(32, 16), engine=engine, lr=0.05,
                             momentum=0.9, weight_decay=0.01, epochs=2, batch_size=50,
                             dtype="float64", device=device)
        results[device] = train(config, digits)
    cpu, gpu = results["cpu"], results["cuda"]
    assert gpu.status == "completed"
    assert next(gpu.model.parameters()).device.type == "cuda"
    for a, b in zip(cpu.history, gpu.history, strict=True):
        assert abs(a.train_loss - b.train_loss) <= 1e-9
        assert abs(a.val_loss - b.val_loss) <= 1e-9
    assert gpu.test.confusion == cpu.test.confusion
    gpu_weights = {k: v.cpu() for k, v in gpu.model.state_dict().items()}
    for name, value in cpu.model.state_dict().items():
        assert torch.allclose(gpu_weights[name], value, rtol=1e-9, atol=1e-12), name


def test_gradcheck_on_cuda_passes():
    torch.manual_seed(0)
    model = MLP([20, 16, 8, 3], activation="tanh", dtype=torch.float64).to(CUDA)
    x = torch.randn(5, 20, dtype=torch.float64).to(CUDA)
    y = torch.randint(0, 3, (5,)).to(CUDA)
    report = gradcheck(model, x, y, "cross_entropy")
    assert report.passed, report


def test_cli_train_on_cuda_then_evaluate_on_the_cpu(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--device", "cuda", "--epochs", "2",
                 "--dtype", "float64", "--out", str(run)]) == 0
    assert read_json(run / "config.json")["device"].startswith("cuda")
    trained = read_json(run / "results.json")
    on_cpu = evaluate_run(run, device="cpu")
    assert abs(on_cpu.loss - trained["test_loss"]) <= 1e-9
    assert on_cpu.confusion == trained["confusion_matrix"]
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0


@pytest.mark.parametrize("omp_threads", ["2", None], ids=["forked-workers", "spawned-workers"])
def test_reproduce_on_cuda_with_worker_processes(tmp_path, omp_threads):
    """Two sweep workers on one GPU beside the parent's own CUDA work; with one torch
    thread per worker they are forked, which must happen before the parent touches CUDA."""
    env = dict(os.environ)
    if omp_threads is not None:
        env["OMP_NUM_THREADS"] = omp_threads
    out = tmp_path / "reproduce"
    proc = subprocess.run(
        [sys.executable, "-m", "handgrad", "reproduce", "--dataset", "digits", "--device",
         "cuda", "--workers", "2", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    selected = read_json(out / "sweep" / "results.json")["selected"]
    assert selected["status"] == "completed" and selected["test_accuracy"] > 0.8
    assert (out / "report.md").stat().st_size > 0
