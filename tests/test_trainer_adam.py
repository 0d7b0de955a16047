"""The trainer's own Adam: torch.optim.Adam's update bit for bit, without importing torch._dynamo."""

import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from sbihep._adam import Adam
from sbihep.estimators.train import train

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


def _steps(net, opt, n, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(32, 3, generator=g)
        opt.zero_grad()
        ((net(x).squeeze(-1) - x[:, 0]) ** 2).mean().backward()
        opt.step()


def test_adam_equals_torch_adam_bitwise_and_resumes_from_its_state():
    a, b = _net(), _net()
    ours = Adam(a.parameters(), lr=3e-3, weight_decay=1e-2)
    theirs = torch.optim.Adam(b.parameters(), lr=3e-3, weight_decay=1e-2)
    _steps(a, ours, 5, 1)
    _steps(b, theirs, 5, 1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    # a checkpoint written with torch.optim.Adam resumes here with the same trajectory
    c = _net()
    c.load_state_dict(b.state_dict())
    resumed = Adam(c.parameters(), lr=1.0)
    resumed.load_state_dict(theirs.state_dict())
    assert resumed.lr == 3e-3
    _steps(c, resumed, 4, 2)
    _steps(b, theirs, 4, 2)
    assert all(torch.equal(p, q) for p, q in zip(c.parameters(), b.parameters()))


def test_train_follows_torch_adam_with_exponential_lr_exactly():
    g = torch.Generator().manual_seed(0)
    data = {"x": torch.randn(200, 3, generator=g)}
    data["y"] = data["x"][:, :1] * 2.0

    def loss(model, batch):
        return ((model(batch["x"]) - batch["y"]) ** 2).mean()

    net = _net(1)
    history = train(net, loss, data, epochs=4, batch_size=50, learning_rate=1e-2, final_learning_rate=1e-3, quiet=True,
                    early_stopping_patience=None, clip_grad_norm=None, validation_fraction=0.25, seed=3, device="cpu")
    # the same run with torch.optim.Adam + ExponentialLR (the trainer's earlier implementation)
    ref = _net(1)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=(1e-3 / 1e-2) ** (1 / 3))
    gen = torch.Generator().manual_seed(3)
    order = torch.randperm(200, generator=gen)
    train_idx = order[50:]
    best, best_state, lrs = float("inf"), None, []
    for _ in range(4):
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for s in range(0, len(perm), 50):
            idx = perm[s : s + 50]
            opt.zero_grad()
            loss(ref, {k: v[idx] for k, v in data.items()}).backward()
            opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        val = float(loss(ref, {k: v[order[:50]] for k, v in data.items()}).detach())
        sched.step()
        if val < best:
            best, best_state = val, {k: v.clone() for k, v in ref.state_dict().items()}
    ref.load_state_dict(best_state)
    assert history.learning_rate == lrs
    assert all(torch.equal(p, q) for p, q in zip(net.state_dict().values(), ref.state_dict().values()))


def test_the_first_fit_does_not_import_torch_dynamo():
    """torch.optim imported torch._dynamo (seconds) on the first Adam step of every process."""
    code = (
        "import sys, torch; torch.set_num_threads(1)\n"
        "from sbihep.estimators import RatioEstimator\n"
        "from sbihep.estimators.toys import GaussianToy\n"
        "toy = GaussianToy(); est = RatioEstimator(['x'], toy.space, hidden=(8,), seed=0)\n"
        "est.fit(toy.ratio_training_sample(256, seed=1), 'alices', epochs=1, batch_size=64, quiet=True)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
