"""Which TorchScript operators run without trust, and screening an archive against them.

TorchScript is code: besides tensor maths it can call ``torch.from_file`` (which maps any
file, writably with ``shared=True``), print, fork, or call custom operators a library
registered. Dockyard therefore runs a TorchScript archive without ``trusted=True`` only
when every operator in it is on :data:`ALLOWED_OPS` — tensor maths, neural-network layers,
shapes, control flow and list/dict/tuple plumbing, nothing that reaches a file, a process,
the network or uninitialised memory. Anything else, including operators this list has
never heard of, needs trust.

Screening happens in two steps, both before any of the module's code runs:

1. :func:`screen_archive` reads the zip with Python's ``zipfile`` and rebuilds it, so torch
   loads exactly the entries that were screened (no second zip parser to disagree with), and
   finds ``__setstate__`` methods: ``torch.jit.load`` runs those while loading.
2. :func:`unlisted_ops` walks every graph of the loaded module — every method and hook of
   the module and of each submodule, with calls inlined and nested blocks and subgraphs
   followed — and returns the operators not on the list.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

SETSTATE = "__setstate__"
"""What :func:`screen_archive` reports for a method ``torch.jit.load`` would run."""

_SETSTATE_DEF = re.compile(rb"\bdef\s+__setstate__\b")

_CONTROL = {
    "prim::Constant",
    "prim::GetAttr",
    "prim::SetAttr",
    "prim::If",
    "prim::Loop",
    "prim::ListConstruct",
    "prim::ListUnpack",
    "prim::TupleConstruct",
    "prim::TupleIndex",
    "prim::TupleUnpack",
    "prim::DictConstruct",
    "prim::RaiseException",
    "prim::Uninitialized",
    "prim::unchecked_cast",
    "prim::NumToTensor",
    "prim::device",
    "prim::dtype",
    "prim::layout",
    "prim::is_nested",
    "prim::is_cuda",
    "prim::requires_grad",
    "prim::type",
    "prim::shape",
    "prim::data",
    "prim::min",
    "prim::max",
    "prim::abs",
    "prim::isinstance",
    "prim::AutogradZero",
    "aten::Bool",
    "aten::Int",
    "aten::Float",
    "aten::ScalarImplicit",
    "aten::IntImplicit",
    "aten::FloatImplicit",
    "aten::__and__",
    "aten::__or__",
    "aten::__xor__",
    "aten::__not__",
    "aten::__is__",
    "aten::__isnot__",
    "aten::__contains__",
    "aten::__getitem__",
    "aten::__range_length",
    "aten::__derive_index",
    "aten::_set_item",
    "aten::append",
    "aten::extend",
    "aten::insert",
    "aten::pop",
    "aten::len",
    "aten::list",
    "aten::keys",
    "aten::values",
    "aten::items",
    "aten::get",
    "aten::dict",
    "aten::format",
    "aten::str",
    "aten::warn",
    "aten::is_grad_enabled",
    "aten::is_autocast_enabled",
    "aten::is_autocast_cpu_enabled",
    "aten::floordiv",
    "aten::dim",
    "aten::size",
    "aten::numel",
    "aten::item",
    "aten::tolist",
    "aten::is_floating_point",
    "aten::is_complex",
    "aten::_shape_as_tensor",
}
_MATHS = {
    "aten::add",
    "aten::add_",
    "aten::sub",
    "aten::sub_",
    "aten::rsub",
    "aten::mul",
    "aten::mul_",
    "aten::div",
    "aten::div_",
    "aten::true_divide",
    "aten::floor_divide",
    "aten::remainder",
    "aten::fmod",
    "aten::pow",
    "aten::neg",
    "aten::abs",
    "aten::sign",
    "aten::exp",
    "aten::expm1",
    "aten::log",
    "aten::log1p",
    "aten::log2",
    "aten::log10",
    "aten::sqrt",
    "aten::rsqrt",
    "aten::reciprocal",
    "aten::square",
    "aten::sin",
    "aten::cos",
    "aten::tan",
    "aten::asin",
    "aten::acos",
    "aten::atan",
    "aten::atan2",
    "aten::sinh",
    "aten::cosh",
    "aten::erf",
    "aten::erfc",
    "aten::floor",
    "aten::ceil",
    "aten::round",
    "aten::trunc",
    "aten::frac",
    "aten::clamp",
    "aten::clamp_",
    "aten::clamp_min",
    "aten::clamp_max",
    "aten::clip",
    "aten::maximum",
    "aten::minimum",
    "aten::max",
    "aten::min",
    "aten::amax",
    "aten::amin",
    "aten::sum",
    "aten::mean",
    "aten::prod",
    "aten::std",
    "aten::var",
    "aten::norm",
    "aten::logsumexp",
    "aten::cumsum",
    "aten::cumprod",
    "aten::argmax",
    "aten::argmin",
    "aten::topk",
    "aten::sort",
    "aten::argsort",
    "aten::all",
    "aten::any",
    "aten::eq",
    "aten::ne",
    "aten::lt",
    "aten::le",
    "aten::gt",
    "aten::ge",
    "aten::logical_and",
    "aten::logical_or",
    "aten::logical_not",
    "aten::logical_xor",
    "aten::isnan",
    "aten::isinf",
    "aten::isfinite",
    "aten::nan_to_num",
    "aten::where",
    "aten::masked_fill",
    "aten::masked_fill_",
    "aten::matmul",
    "aten::mm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::addmm",
    "aten::addmv",
    "aten::mv",
    "aten::dot",
    "aten::einsum",
    "aten::outer",
}
_SHAPES = {
    "aten::t",
    "aten::transpose",
    "aten::permute",
    "aten::reshape",
    "aten::view",
    "aten::view_as",
    "aten::reshape_as",
    "aten::flatten",
    "aten::unflatten",
    "aten::squeeze",
    "aten::unsqueeze",
    "aten::expand",
    "aten::expand_as",
    "aten::repeat",
    "aten::cat",
    "aten::concat",
    "aten::stack",
    "aten::hstack",
    "aten::vstack",
    "aten::split",
    "aten::chunk",
    "aten::unbind",
    "aten::narrow",
    "aten::select",
    "aten::slice",
    "aten::index",
    "aten::index_select",
    "aten::gather",
    "aten::contiguous",
    "aten::clone",
    "aten::detach",
    "aten::to",
    "aten::type_as",
    "aten::float",
    "aten::double",
    "aten::long",
    "aten::copy_",
    "aten::fill_",
    "aten::zero_",
    "aten::zeros",
    "aten::zeros_like",
    "aten::ones",
    "aten::ones_like",
    "aten::full",
    "aten::full_like",
    "aten::arange",
    "aten::linspace",
    "aten::tensor",
    "aten::scalar_tensor",
    "aten::as_tensor",
    "aten::one_hot",
    "aten::pad",
    "aten::constant_pad_nd",
}
_LAYERS = {
    "aten::linear",
    "aten::bilinear",
    "aten::_convolution",
    "aten::conv1d",
    "aten::conv2d",
    "aten::conv3d",
    "aten::conv_transpose1d",
    "aten::conv_transpose2d",
    "aten::conv_transpose3d",
    "aten::batch_norm",
    "aten::layer_norm",
    "aten::group_norm",
    "aten::instance_norm",
    "aten::dropout",
    "aten::dropout_",
    "aten::feature_dropout",
    "aten::feature_dropout_",
    "aten::alpha_dropout",
    "aten::alpha_dropout_",
    "aten::embedding",
    "aten::embedding_bag",
    "aten::lstm",
    "aten::gru",
    "aten::rnn_tanh",
    "aten::rnn_relu",
    "aten::scaled_dot_product_attention",
    "aten::_native_multi_head_attention",
    "aten::_transformer_encoder_layer_fwd",
    "aten::max_pool1d",
    "aten::max_pool2d",
    "aten::max_pool3d",
    "aten::avg_pool1d",
    "aten::avg_pool2d",
    "aten::avg_pool3d",
    "aten::adaptive_avg_pool1d",
    "aten::adaptive_avg_pool2d",
    "aten::adaptive_avg_pool3d",
    "aten::adaptive_max_pool1d",
    "aten::adaptive_max_pool2d",
    "aten::adaptive_max_pool3d",
    "aten::upsample_nearest1d",
    "aten::upsample_nearest2d",
    "aten::upsample_nearest3d",
    "aten::_upsample_nearest_exact1d",
    "aten::_upsample_nearest_exact2d",
    "aten::_upsample_nearest_exact3d",
    "aten::upsample_linear1d",
    "aten::upsample_bilinear2d",
    "aten::upsample_bicubic2d",
    "aten::upsample_trilinear3d",
    "aten::_upsample_bilinear2d_aa",
    "aten::_upsample_bicubic2d_aa",
    "aten::_upsample_lanczos2d_aa",
    "aten::pixel_shuffle",
    "aten::pixel_unshuffle",
    "aten::cosine_similarity",
    "aten::pairwise_distance",
    "aten::softmax",
    "aten::log_softmax",
    "aten::sigmoid",
    "aten::sigmoid_",
    "aten::tanh",
    "aten::tanh_",
    "aten::relu",
    "aten::relu_",
    "aten::relu6",
    "aten::leaky_relu",
    "aten::leaky_relu_",
    "aten::elu",
    "aten::elu_",
    "aten::selu",
    "aten::selu_",
    "aten::celu",
    "aten::celu_",
    "aten::gelu",
    "aten::silu",
    "aten::silu_",
    "aten::mish",
    "aten::mish_",
    "aten::softplus",
    "aten::hardswish",
    "aten::hardswish_",
    "aten::hardsigmoid",
    "aten::hardsigmoid_",
    "aten::hardtanh",
    "aten::hardtanh_",
    "aten::hardshrink",
    "aten::softshrink",
    "aten::prelu",
    "aten::log_sigmoid",
    "aten::threshold",
    "aten::threshold_",
    "aten::glu",
}
ALLOWED_OPS: frozenset[str] = frozenset(_CONTROL | _MATHS | _SHAPES | _LAYERS)
"""Operators a TorchScript module may use without trust (node kinds, overloads included).

Deliberately absent, among everything else: ``aten::from_file`` (maps files),
``prim::Print``, ``prim::fork`` / ``aten::wait``, ``prim::CallMethod`` and
``prim::CallFunction`` left after inlining (interface calls), ``aten::empty*`` and
``aten::set_`` (uninitialised or aliased memory), and every custom operator namespace."""


class ArchiveError(ValueError):
    """The bytes are not a zip archive Dockyard can screen."""


def screen_archive(data: bytes) -> tuple[bytes, list[str]]:
    """The archive rebuilt from what ``zipfile`` reads, and what in it runs at load time.

    Torch is handed the rebuilt bytes, so the entries screened here are exactly the ones it
    loads. The list holds :data:`SETSTATE` when any code file defines a ``__setstate__``
    method (``torch.jit.load`` calls it while loading); otherwise it is empty.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if len(set(names)) != len(names):
                raise ArchiveError("the archive names some entries twice")
            entries = [(info.filename, archive.read(info)) for info in infos]
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError) as exc:
        raise ArchiveError(str(exc)) from exc
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as out:
        for name, content in entries:
            out.writestr(name, content)
    runs = [SETSTATE] if any(_SETSTATE_DEF.search(content) for _, content in entries) else []
    return rebuilt.getvalue(), runs


def unlisted_ops(module: Any) -> list[str]:
    """Operators of the loaded TorchScript ``module`` not on :data:`ALLOWED_OPS`, sorted.

    Walks every method and forward hook of the module and of each submodule, each graph
    copied with its calls inlined, following nested blocks and subgraph attributes.
    """
    import torch

    found: set[str] = set()
    for _, submodule in module.named_modules():
        scripted = submodule._c
        graphs = [scripted._get_method(name).graph for name in scripted._method_names()]
        hooks = [*scripted._get_forward_pre_hooks(), *scripted._get_forward_hooks()]
        graphs += [hook.graph for hook in hooks]
        for graph in graphs:
            inlined = graph.copy()
            torch._C._jit_pass_inline(inlined)
            _collect(inlined.block(), found)
    return sorted(found - ALLOWED_OPS)


def _collect(block: Any, found: set[str]) -> None:
    for node in block.nodes():
        found.add(node.kind())
        for inner in node.blocks():
            _collect(inner, found)
        for attribute in node.attributeNames():
            kind = node.kindOf(attribute)
            if kind == "g":
                _collect(node.g(attribute).block(), found)
            elif kind == "gs":
                for graph in node.gs(attribute):
                    _collect(graph.block(), found)
