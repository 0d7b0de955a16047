"""Adam without ``torch.optim``: the optimiser of sbihep's trainer.

``torch.optim.Optimizer`` imports ``torch._dynamo`` (the compiler stack: sympy, torch.fx, …) on its
first use — its ``add_param_group`` and ``zero_grad`` are wrapped by ``torch._disable_dynamo`` and
``step`` calls ``torch._dynamo.graph_break()`` — which costs 1.3–2 s on a warm disk cache and 7–12 s
on a cold one before the first training step (measured with ``python -X importtime`` and cProfile).
This class performs the same update as ``torch.optim.Adam``'s single-tensor implementation (the one
torch uses for CPU tensors), operation for operation, so CPU runs are bitwise identical to
``torch.optim.Adam(params, lr, betas, eps, weight_decay)``; its :meth:`state_dict` has torch's layout,
so checkpoints written with ``torch.optim.Adam`` resume here.  On CUDA torch defaults to its
multi-tensor kernels, whose rounding can differ in the last bits.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch

from sbihep.errors import InvalidInputError

__all__ = ["Adam"]


class Adam:
    """Adam (Kingma & Ba, arXiv:1412.6980) with L2 weight decay added to the gradient, as torch's.

    Args:
        params: the tensors to optimise (each with ``requires_grad``).
        lr: learning rate (> 0); change it through the attribute ``lr``.
        betas: decay rates of the first and second moment estimates, each in [0, 1).
        eps: added to the square root of the second moment (> 0).
        weight_decay: L2 penalty coefficient (≥ 0), added to the gradient.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.params = list(params)
        if not self.params:
            raise InvalidInputError("Adam: params is empty")
        if not lr > 0:
            raise InvalidInputError(f"Adam: lr must be positive, got {lr!r}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise InvalidInputError(f"Adam: betas must lie in [0, 1), got {betas!r}")
        if not eps > 0 or not weight_decay >= 0:
            raise InvalidInputError(f"Adam: eps must be > 0 and weight_decay ≥ 0, got {eps!r}, {weight_decay!r}")
        self.lr, self.betas, self.eps, self.weight_decay = float(lr), (float(betas[0]), float(betas[1])), float(eps), float(weight_decay)
        self.state: dict[int, dict[str, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        """Drop every gradient (``grad = None``, as ``torch.optim``'s default)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        beta1, beta2 = self.betas
        for i, param in enumerate(self.params):
            if param.grad is None:
                continue
            grad = param.grad
            state = self.state.get(i)
            if state is None:
                state = self.state[i] = {
                    "step": torch.tensor(0.0, dtype=torch.float32),
                    "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format),
                }
            state["step"] += 1
            if self.weight_decay != 0:
                grad = grad.add(param, alpha=self.weight_decay)
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = state["step"].item()
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(self.eps)
            param.addcdiv_(exp_avg, denom, value=-(self.lr / bias_correction1))

    def state_dict(self) -> dict:
        """``{"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [{"lr", …, "params"}]}``
        (the layout of ``torch.optim.Adam.state_dict()``)."""
        return {
            "state": {i: {k: v.clone() for k, v in s.items()} for i, s in self.state.items()},
            "param_groups": [{"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay,
                              "amsgrad": False, "maximize": False, "params": list(range(len(self.params)))}],
        }

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore a :meth:`state_dict` (or ``torch.optim.Adam``'s, one parameter group, no amsgrad).

        Raises:
            InvalidInputError: another number of parameters or groups, amsgrad, or moments of another shape.
        """
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params) or groups[0].get("amsgrad", False):
            raise InvalidInputError("Adam.load_state_dict: the state is of another optimiser (other parameters, groups or amsgrad)")
        group = groups[0]
        index = {int(k): pos for pos, k in enumerate(group["params"])}
        state = {}
        for key, s in state_dict["state"].items():
            i = index[int(key)]
            p = self.params[i]
            if tuple(s["exp_avg"].shape) != tuple(p.shape) or tuple(s["exp_avg_sq"].shape) != tuple(p.shape):
                raise InvalidInputError(f"Adam.load_state_dict: the moments of parameter {i} have another shape than {tuple(p.shape)}")
            state[i] = {"step": torch.as_tensor(s["step"], dtype=torch.float32).clone(),
                        "exp_avg": s["exp_avg"].to(p).clone(), "exp_avg_sq": s["exp_avg_sq"].to(p).clone()}
        self.state = state
        self.lr = float(group["lr"])
        self.betas = (float(group["betas"][0]), float(group["betas"][1]))
        self.eps, self.weight_decay = float(group["eps"]), float(group["weight_decay"])
