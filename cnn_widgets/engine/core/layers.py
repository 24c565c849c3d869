"""Layer registry (leaf modules in forward order, with output shapes) and the piecewise-linear check."""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from .borrow import borrowed, uninterrupted
from .hooks import every_call
from .results import LayerInfo

# Leaf modules whose output is a piecewise-linear function of their input (BatchNorm and Dropout
# only in eval mode, checked separately).
PIECEWISE_LINEAR_MODULES = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear,
    nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.Hardtanh, nn.PReLU,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.Flatten, nn.Unflatten, nn.Identity, nn.ZeroPad2d, nn.ConstantPad2d,
    nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d,   # fixed weights: linear
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
)
# Modules whose forward pass changes with train/eval mode.
_MODE_DEPENDENT = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)

# Functions and tensor methods that keep a function piecewise linear (what torch.fx may see
# between modules). Multiplication or division is fine when one side is a constant.
_PL_FUNCTIONS = {
    operator.add, operator.sub, operator.neg, operator.getitem, operator.mul, operator.truediv,
    getattr, torch.flatten, torch.cat, torch.relu, F.relu, F.leaky_relu, F.max_pool2d,
    F.max_pool1d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.dropout,
    F.linear, F.conv2d, F.pad, F.interpolate, torch.add, torch.sub, torch.reshape, torch.squeeze,
    torch.unsqueeze, torch.transpose, torch.permute, torch.chunk, torch.split,
}
# Shape checks (timm's ``torch._assert(x.ndim == 4, ...)``): no part of the function when
# they compare sizes only.
_SIZE_CHECKS = {operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
                torch._assert}
# Integer arithmetic, piecewise linear when it works on sizes (ShuffleNet's channel shuffle:
# ``channels // groups``), not on tensor values.
_SIZE_ARITHMETIC = {operator.floordiv, operator.mod, operator.mul, operator.add, operator.sub}
_SIZE_OPS = _SIZE_ARITHMETIC | _SIZE_CHECKS
_PL_METHODS = {"view", "reshape", "flatten", "size", "squeeze", "unsqueeze", "permute", "contiguous",
               "relu", "relu_", "add", "add_", "sub", "mean", "sum", "transpose", "clone", "__getitem__",
               "mul", "div", "expand", "expand_as", "view_as", "dim", "chunk", "split"}


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]


def registry(model: nn.Module, example: torch.Tensor) -> tuple[list[LayerInfo], torch.Tensor]:
    """For a model torch.fx cannot trace: run ``example`` once with a hook on every leaf module;
    return every call of one that returned a tensor, in forward order (the k-th call of a
    module named ``name:k``), and the model's output."""
    seen: list[LayerInfo] = []

    def hook(name, module, inputs, output):
        if isinstance(output, torch.Tensor):
            seen.append(LayerInfo(name, type(module).__name__, tuple(output.shape[1:])))
    with every_call(model, [name for name, _ in leaf_modules(model)], hook), torch.no_grad():
        out = model(example)
    return seen, out


def _trace_graph(model: nn.Module):
    """torch.fx graph of ``model``: the one its engine traced (see :mod:`.graph`), else traced
    here, borrowing the model (tracing patches ``nn.Module.__call__`` process-wide) and never
    cut short by an interrupt (which would leave the patch in place)."""
    from .graph import graph_of
    graph = graph_of(model)
    if graph is not None:
        return graph.fx
    import torch.fx
    with borrowed(model, eval_mode=False):
        return uninterrupted(torch.fx.symbolic_trace, model).graph


def _is_size(arg) -> bool:
    """``arg`` is a constant or computed from tensor sizes only (``x.size()``, ``x.shape``)."""
    from torch.fx import Node
    if not isinstance(arg, Node):
        return True
    if arg.op == "call_method" and arg.target in ("size", "dim"):
        return True
    if arg.op == "call_function" and arg.target is getattr:
        return arg.args[1] in ("shape", "ndim")
    if arg.op == "call_function" and (arg.target is operator.getitem
                                      or arg.target in _SIZE_OPS):
        return all(_is_size(a) for a in arg.args)
    return False


def _constant_operand(node) -> bool:
    """A mul/div node where at most one operand is a traced value."""
    from torch.fx import Node
    return sum(isinstance(a, Node) for a in node.args) <= 1


def _frozen_batch_norm(node, modules) -> bool:
    """``F.batch_norm`` in eval mode with the statistics and affine parameters of one BatchNorm
    module (timm's BatchNormAct2d): an affine map per channel whose shift Algorithm 1's
    bias-free copy zeroes with the module's own."""
    names = ("input", "running_mean", "running_var", "weight", "bias", "training")
    a = dict(zip(names, node.args), **node.kwargs)
    owners = {getattr(a.get(k), "target", "").rpartition(".")[0] if getattr(a.get(k), "op", "")
              == "get_attr" else None for k in ("running_mean", "running_var", "weight", "bias")
              if a.get(k) is not None}
    owner = modules.get(next(iter(owners))) if len(owners) == 1 else None
    return (isinstance(owner, nn.modules.batchnorm._BatchNorm) and a.get("training") is False
            and a.get("running_mean") is not None)


_CHECKED_FUNCTIONS = {F.batch_norm: _frozen_batch_norm}


def nonlinear_parts(model: nn.Module, eval_mode: bool) -> list[str]:
    """Reasons why ``model`` is not a piecewise-linear function of its input; [] when it is.

    Leaf modules are checked by type; functional calls between them are found with torch.fx.
    A model that cannot be traced is reported, since its functional activations cannot be seen.
    """
    reasons = []
    for name, m in leaf_modules(model):
        if isinstance(m, nn.Sequential) and len(m) == 0:
            continue                 # an empty Sequential is the identity (ShuffleNet's branch1)
        if not isinstance(m, PIECEWISE_LINEAR_MODULES):
            reasons.append(f"{type(m).__name__} '{name}' is not piecewise linear")
        elif isinstance(m, _MODE_DEPENDENT) and m.training and not eval_mode:
            reasons.append(f"{type(m).__name__} '{name}' runs in train mode "
                           "(batch statistics or random masks)")
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None:
            reasons.append(f"{type(m).__name__} '{name}' has no running statistics "
                           "(track_running_stats=False): it normalises by batch statistics")
    try:
        graph = _trace_graph(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure means "cannot check"
        reasons.append(f"the forward pass could not be traced with torch.fx "
                       f"({type(e).__name__}), so functional activations cannot be ruled out")
        return reasons
    modules = dict(model.named_modules())
    for node in graph.nodes:
        if node.op == "call_function":
            ok = node.target in _PL_FUNCTIONS
            if node.target in (operator.mul, operator.truediv):
                ok = _constant_operand(node)
            if not ok and node.target in _SIZE_OPS:
                ok = _is_size(node)
            if node.target in _CHECKED_FUNCTIONS:
                ok = _CHECKED_FUNCTIONS[node.target](node, modules)
        elif node.op == "call_method":
            ok = node.target in _PL_METHODS
            if node.target in ("mul", "div"):
                ok = _constant_operand(node)
        else:
            continue
        if not ok:
            target = getattr(node.target, "__name__", str(node.target))
            reasons.append(f"'{target}' in forward() is not known to be piecewise linear")
    return reasons
