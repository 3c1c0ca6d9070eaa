from __future__ import annotations

import torch

from handgrad import MLP
from handgrad.data import load_dataset
from handgrad.engine.losses import get_loss
from handgrad.run.metrics import evaluate, one_hot


def test_confusion_matrix_loss_and_accuracy_match_a_direct_count():
    data = load_dataset("digits", classes=["1", "7", "9"], seed=0)
    torch.manual_seed(0)
    model = MLP([64, 8, 3], dtype=torch.float64)
    ev = evaluate(model, data, data.test, get_loss("cross_entropy"), torch.float64,
                  batch_size=7)  # short last batch
    x = data.inputs(data.test.x, torch.float64)
    with torch.no_grad():
        out = model(x)
    pred = out.argmax(1)
    expected = [[int(((data.test.y == i) & (pred == j)).sum()) for j in range(3)]
                for i in range(3)]
    assert ev.confusion == expected
    assert ev.accuracy == (pred == data.test.y).double().mean().item()
    full = torch.nn.functional.cross_entropy(out, data.test.y).item()
    assert abs(ev.loss - full) <= 1e-12


def test_one_hot_rows():
    t = one_hot(torch.tensor([2, 0]), 3, torch.float32)
    assert t.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
