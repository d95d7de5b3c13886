"""The category map of the op breakdown: which profiler event's self time counts as basis, matmul, norm, ...

This is the one place that maps torch.profiler event names to categories; docs/methodology.md (Profiling) shows it
as a table. No torch here. How an event is classified (kanbench.measure.breakdown applies it):

1. An event inside a `kanbench::untimed` range is left out (setup the phase does not time, e.g. backward's forward).
2. `ProfilerStep#N` self time is `python`: time in the step outside every op (interpreter, module calls).
   `autograd::engine::evaluate_function: ...` self time is `autograd` (the engine's bookkeeping per node).
3. Otherwise the nearest enclosing event (the event itself first) that owns a whole subtree decides:
   a SUBTREE op or range below, the `kanbench::basis` range (basis), or an autograd engine node whose forward op
   is known (its sequence number links it): a backward node inherits the category of the forward op that made it.
   A Python frame (recorded with with_stack) that no such event encloses is `python`.
4. Otherwise the nearest enclosing event with a name in OTHER decides (elementwise and layout ops outside the
   basis). When a model's forward never calls `layer.basis` (no basis range was recorded), BASIS_BY_NAME ops count
   as basis instead.
5. What none of this matches is `uncategorized`; coverage is the share of self time that is not.
"""

from __future__ import annotations

CATEGORIES = (
    "basis", "matmul", "norm", "activation", "autograd", "optimizer", "compiled", "other", "python", "uncategorized",
)  # fmt: skip

BASIS_RANGE = "kanbench::basis"
UNTIMED_RANGE = "kanbench::untimed"
STEP_PREFIX = "ProfilerStep"  # torch names the ranges "ProfilerStep#N" and reports them as "ProfilerStep*"
EVALUATE_PREFIX = "autograd::engine::evaluate_function: "

# Ops and ranges that own their whole subtree: everything they call is theirs, wherever they run.
SUBTREE = {
    "matmul": {
        "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::matmul", "aten::linear",
        "aten::einsum", "aten::mv", "aten::addmv", "aten::dot", "aten::vdot", "aten::tensordot",
        "aten::_addmm_activation", "aten::_scaled_mm", "aten::_int_mm",
    },
    "norm": {
        "aten::layer_norm", "aten::native_layer_norm", "aten::native_layer_norm_backward",
        "aten::rms_norm", "aten::_fused_rms_norm", "aten::_fused_rms_norm_backward",
        "aten::batch_norm", "aten::native_batch_norm", "aten::native_batch_norm_backward",
        "aten::group_norm", "aten::native_group_norm", "aten::native_group_norm_backward",
    },
    "activation": {
        "aten::silu", "aten::silu_", "aten::silu_backward", "aten::relu", "aten::relu_", "aten::threshold_backward",
        "aten::gelu", "aten::gelu_backward",
    },
    "autograd": {"torch::autograd::AccumulateGrad"},
    "basis": {BASIS_RANGE},
}  # fmt: skip
SUBTREE_PREFIXES = (
    ("Optimizer.", "optimizer"), ("aten::_foreach_", "optimizer"), ("aten::_fused_adam", "optimizer"),
    # torch.compile: fused generated kernels cannot be split by category; extern matmuls inside stay matmul
    ("Torch-Compiled Region", "compiled"), ("TorchDynamo Cache Lookup", "compiled"),
    ("CompiledFunction", "compiled"), ("## Call CompiledFxGraph", "compiled"),
)  # fmt: skip

# Ops that are `other` when no enclosing event claims them: elementwise arithmetic outside the basis (adding the
# base and spline branches, scaling the spline weights), views and copies, allocation, reductions and the loss.
OTHER = {
    # arithmetic and reductions
    "aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::rsub", "aten::mul", "aten::mul_", "aten::div",
    "aten::div_", "aten::neg", "aten::sum", "aten::mean", "aten::sqrt", "aten::addcmul_", "aten::addcdiv_",
    "aten::lerp_", "aten::clamp", "aten::clamp_", "aten::abs", "aten::sign", "aten::isfinite", "aten::all",
    "aten::any", "aten::eq", "aten::ne", "aten::item", "aten::_local_scalar_dense", "aten::where",
    # loss
    "aten::mse_loss", "aten::mse_loss_backward", "aten::broadcast_tensors",
    # views, layout and copies
    "aten::view", "aten::reshape", "aten::_reshape_alias", "aten::flatten", "aten::unflatten", "aten::unsqueeze",
    "aten::squeeze", "aten::expand", "aten::expand_as", "aten::as_strided", "aten::slice", "aten::select",
    "aten::t", "aten::transpose", "aten::permute", "aten::contiguous", "aten::clone", "aten::copy_", "aten::to",
    "aten::_to_copy", "aten::detach", "detach", "aten::alias", "aten::_unsafe_view", "aten::resolve_conj",
    "aten::resolve_neg", "aten::lift_fresh", "aten::slice_backward", "aten::select_backward", "aten::cat",
    "aten::stack", "aten::split", "aten::chunk", "aten::narrow", "aten::index", "aten::index_select",
    "aten::gather", "aten::_unsafe_split", "aten::type_as", "aten::squeeze_", "aten::unsqueeze_",
    # allocation and filling
    "aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty", "aten::new_empty_strided",
    "aten::zeros", "aten::zeros_like", "aten::ones", "aten::ones_like", "aten::full", "aten::full_like",
    "aten::fill_", "aten::zero_", "aten::resize_", "aten::new_zeros", "aten::new_ones", "aten::scalar_tensor",
    # CUDA runtime calls outside every op (inside an op they take the op's category)
    "cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx", "cudaMemcpyAsync",
    "cudaMemsetAsync", "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaStreamIsCapturing",
    "cudaFuncGetAttributes", "cudaGetDevice", "cudaPeekAtLastError", "cudaOccupancyMaxActiveBlocksPerMultiprocessor",
}  # fmt: skip

# What a basis evaluation is made of, for models whose forward never calls `layer.basis` (attribution "names"):
# then these count as basis wherever they run. Shared arithmetic (mul, sub, div) stays `other` there, so this
# fallback undercounts the basis; the record says which attribution was used.
BASIS_BY_NAME = {
    "aten::exp", "aten::exp_", "aten::tanh", "aten::tanh_", "aten::tanh_backward", "aten::pow", "aten::pow_",
    "aten::square", "aten::ge", "aten::gt", "aten::le", "aten::lt", "aten::logical_and", "aten::bitwise_and",
    "aten::__and__", "aten::nan_to_num", "aten::reciprocal", "aten::sigmoid",
}  # fmt: skip

# Elementwise ops that belong to the basis when a basis range encloses them and to `other` when nothing does.
OTHER |= BASIS_BY_NAME


def subtree_category(name: str) -> str | None:
    """The category an event gives its whole subtree, or None."""
    for category, names in SUBTREE.items():
        if name in names:
            return category
    for prefix, category in SUBTREE_PREFIXES:
        if name.startswith(prefix):
            return category
    return None


def self_category(name: str) -> str | None:
    """The category of an event's own self time that no enclosing event can override, or None."""
    if name.startswith(STEP_PREFIX):
        return "python"
    if name.startswith(EVALUATE_PREFIX):
        return "autograd"
    return None


def own_category(name: str, basis_by_name: bool) -> str | None:
    """The category an op has by its name alone when nothing encloses it, or None."""
    if basis_by_name and name in BASIS_BY_NAME:
        return "basis"
    if name in OTHER:
        return "other"
    return None
