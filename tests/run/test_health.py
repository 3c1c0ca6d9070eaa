"""Gradient health per layer (run/health.py): the same numbers from both engines in
float64, the definitions checked against a hand computation, layers.csv read back."""

from __future__ import annotations

import math

import pytest
import torch

import handgrad
from handgrad.engine.model import MLP
from handgrad.run.health import HealthRecorder, mlp_probe

SETTINGS = dict(dataset="digits", hidden=[24, 12], epochs=2, lr=0.05, momentum=0.9,
                weight_decay=1e-3, dtype="float64", batch_size=32)
ENGINES = ("manual", "autograd")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("health")
    return {e: (handgrad.train(engine=e, out=out / e, **SETTINGS), out / e) for e in ENGINES}


def test_both_engines_record_the_same_numbers_in_float64(runs):
    manual, auto = runs["manual"][0].layers, runs["autograd"][0].layers
    assert len(manual) == len(auto) == 2 * 3  # 2 epochs, 3 layers
    for m, a in zip(manual, auto, strict=True):
        assert (m.epoch, m.layer) == (a.epoch, a.layer)
        for key in ("grad_norm", "weight_norm", "update_ratio"):
            assert math.isclose(getattr(m, key), getattr(a, key), rel_tol=1e-9), (m, a, key)
        assert m.dead_fraction == a.dead_fraction
    assert [h.dead_fraction is None for h in manual[:3]] == [False, False, True]  # identity out
    assert all(h.grad_norm > 0 and 0 < h.update_ratio < 1 for h in manual)


def test_layers_csv_is_read_back(runs):
    for result, folder in runs.values():
        assert (folder / "layers.csv").exists()
        assert handgrad.load_run(folder, weights=False).layers == result.layers


def test_definitions_on_a_hand_made_epoch():
    """Two SGD steps: grad and weight norms after the last, the ratio of the last update,
    dead units those whose output was 0 on every sample of both batches."""
    torch.manual_seed(0)
    model = MLP([3, 6, 2], dtype=torch.float64)
    with torch.no_grad():
        model.weight(1)[:2] = -1.0          # units 0 and 1 never fire on x >= 0
        model.bias(1)[:2] = -1.0
    rec, opt = HealthRecorder(mlp_probe(model)), torch.optim.SGD(model.parameters(), lr=0.1)
    outputs = []
    rec.start_epoch()
    for i in range(2):
        rec.before_step(last=i == 1)
        before = model.weight(1).detach().clone()
        opt.zero_grad()
        model(torch.rand(5, 3, dtype=torch.float64)).pow(2).sum().backward()
        outputs.append(model.a[1].detach())
        opt.step()
        rec.after_step()
    first, out = rec.end_epoch(1)
    W = model.weight(1).detach()
    assert first.update_ratio == pytest.approx(float((W - before).norm() / before.norm()))
    assert first.grad_norm == pytest.approx(float(model.weight(1).grad.norm()))
    assert first.weight_norm == pytest.approx(float(W.norm()))
    dead = (torch.cat(outputs) == 0).all(0)
    assert dead[:2].all()
    assert first.dead_fraction == pytest.approx(float(dead.double().mean()))
    assert out.dead_fraction is None and out.layer == "2"


def test_a_broken_layers_csv_is_refused_naming_it(runs, tmp_path):
    import shutil

    folder = tmp_path / "run"
    shutil.copytree(runs["manual"][1], folder)
    text = (folder / "layers.csv").read_text().splitlines()
    (folder / "layers.csv").write_text("\n".join([text[0], "1,1,x,1,1,0", *text[2:]]))
    with pytest.raises(ValueError, match=r"layers\.csv: row 1 is not numbers"):
        handgrad.load_run(folder, weights=False)


def test_any_module_gets_its_weights_recorded():
    """Another model than the MLP (a torch Sequential here): every weight matrix by its
    parameter name, no dead units (no activation is read)."""
    from torch import nn

    from handgrad.run.health import model_probe

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    rec = HealthRecorder(model_probe(net))
    rec.start_epoch()
    rec.before_step(last=True)
    before = net[2].weight.detach().clone()
    net(torch.rand(5, 4, dtype=torch.float64)).sum().backward()
    with torch.no_grad():
        for p in net.parameters():
            p -= 0.1 * p.grad
    rec.after_step()
    rows = rec.end_epoch(1)
    assert [r.layer for r in rows] == ["0", "2"] and all(r.dead_fraction is None for r in rows)
    W = net[2].weight.detach()
    assert rows[1].update_ratio == pytest.approx(float((W - before).norm() / before.norm()))
    assert rows[1].grad_norm == pytest.approx(float(net[2].weight.grad.norm()))
