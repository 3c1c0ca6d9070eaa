# expect: fail autograd
import torch


def backpropagation(model, y_true, y_pred):
    with torch.enable_grad():
        out = model(model.a[0])
        loss = ((out - y_true) ** 2).sum()
        params = [p for l in range(1, model.L + 1)
                  for p in (model.fc[str(l)].weight, model.fc[str(l)].bias)]
        grads = torch.autograd.grad(loss, params)
    for l in range(1, model.L + 1):
        model.dL_dw[l], model.dL_db[l] = grads[2 * l - 2], grads[2 * l - 1]
