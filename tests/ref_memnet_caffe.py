"""An independent plain-PyTorch re-implementation of the MemNet Caffe model, for the oracle tests.

Written for these tests from reading github tyshiwo/MemNet at commit 10b18e927ea0e738609611adf50afac8046eacc2:
``test/MemNet_M6R6_80C64/MemNet_M6R6_80C64_deploy.prototxt`` (the graph) and
``caffe_files/MemNet_M6R6_80C64/MemNet_M6R6_80C64_train.prototxt`` (which convs share weights). No prototxt text is
copied: :func:`memnet_layers` generates the same layer list (layer names, types, bottoms/tops, ``param`` names) from
M, R and the channel counts, and :class:`CaffeNet` runs such a list blob by blob, as Caffe would:

* ``BatchNorm`` (no learnable blobs: mean, variance and the moving-average factor have ``lr_mult: 0``; batch
  statistics in TRAIN, stored ones in TEST, eps 1e-5) followed by ``Scale`` with ``bias_term: true`` (gamma, beta);
* ``Convolution`` with a bias (``num_output`` 64, 3x3 pad 1; the gates 1x1 pad 0; ReconNet ``num_output`` 1);
  layers with the same ``param`` name share the blob (train prototxt: ``conv0m_wa``/``conv0m_ba`` and
  ``conv0m_wb``/``conv0m_bb`` within block m; ``Recon_w``/``Recon_b`` across the M outputs);
* ``Eltwise`` SUM, ``Concat`` on channels, ``ReLU`` in place, and ``Scale`` with ``bias_term: false`` on a
  1-channel blob (``weight_output_end_0m``: one learnable scalar).

The graph: ``bn_conv1``/``scale_conv1``/``relu1`` on ``data``, ``conv1``; block m: R recursions
``eltwise0m_0r = previous + conv0m_0r_b(relu(scale(bn(conv0m_0r_a(relu(scale(bn(previous))))))))``; the gate
``concat0m = [conv1, conv_transition_01 .. 0(m-1), eltwise0m_01 .. 0R]`` -> BN/Scale/ReLU ->
``conv_transition_0m`` (1x1); multi-supervised ReconNet: for each m, ``bn/scale_conv_end_0m`` on
``conv_transition_0m``, ReLU, ``conv_end_0m`` (shared), ``HR_recovery_0m = data + conv_end_0m``,
``weight_output_end_0m`` (Scale), ``HR_recovery`` = their sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Layer:
    name: str
    type: str  # BatchNorm, Scale, ScaleNoBias, ReLU, Convolution, Eltwise, Concat
    bottoms: tuple[str, ...]
    top: str
    channels: int = 0  # BatchNorm/Scale: channels; Convolution: num_output
    in_channels: int = 0
    kernel_size: int = 3
    params: tuple[str, ...] = ()  # shared blob names (Caffe ``param { name: ... }``); () = the layer's own


def _bn_scale_relu(out: list[Layer], tag: str, bottom: str, top: str, c: int, relu: str) -> None:
    out.append(Layer(f"bn_{tag}", "BatchNorm", (bottom,), top, c))
    out.append(Layer(f"scale_{tag}", "Scale", (top,), top, c))
    out.append(Layer(relu, "ReLU", (top,), top))


def memnet_layers(m_blocks: int = 6, recursions: int = 6, c: int = 64, in_ch: int = 1, multi: bool = True,
                  long_term: bool = True, short_term: bool = True, shared: bool = True) -> list[Layer]:
    """The layer list of ``MemNet_M{M}R{R}`` (see the module docstring); ``multi=False`` ends with one ReconNet on
    the last block (``bn_conv_end``/``conv_end``/``HR_recovery``); ``long_term``/``short_term`` give the paper's
    NL/NS ablations (gate reads only the previous state / only the last recursion); ``shared=False`` gives every
    recursion conv its own blobs (the deploy prototxt's per-layer view)."""
    L: list[Layer] = []
    _bn_scale_relu(L, "conv1", "data", "bn_conv1", in_ch, "relu1")
    L.append(Layer("conv1", "Convolution", ("bn_conv1",), "conv1", c, in_ch))
    states = ["conv1"]
    for m in range(1, m_blocks + 1):
        prev = states[-1]
        short = []
        for r in range(1, recursions + 1):
            t = f"{m:02d}_{r:02d}"
            for ab, src in (("a", prev), ("b", f"conv{t}_a")):
                _bn_scale_relu(L, f"conv{t}_{ab}", src, f"bn_conv{t}_{ab}", c, f"relu{t}_{ab}")
                params = (f"conv{m:02d}_w{ab}", f"conv{m:02d}_b{ab}") if shared else ()
                L.append(Layer(f"conv{t}_{ab}", "Convolution", (f"bn_conv{t}_{ab}",), f"conv{t}_{ab}", c, c,
                               params=params))
            L.append(Layer(f"eltwise{t}", "Eltwise", (prev, f"conv{t}_b"), f"eltwise{t}"))
            prev = f"eltwise{t}"
            short.append(prev)
        longs = states if long_term else []
        parts = tuple(longs + (short if short_term else short[-1:]))
        L.append(Layer(f"concat{m:02d}", "Concat", parts, f"concat{m:02d}"))
        _bn_scale_relu(L, f"conv_transition_{m:02d}", f"concat{m:02d}", f"bn_conv_transition_{m:02d}",
                       c * len(parts), f"relu_transition_{m:02d}")
        L.append(Layer(f"conv_transition_{m:02d}", "Convolution", (f"bn_conv_transition_{m:02d}",),
                       f"conv_transition_{m:02d}", c, c * len(parts), kernel_size=1))
        states.append(f"conv_transition_{m:02d}")
    if not multi:
        _bn_scale_relu(L, "conv_end", states[-1], "bn_conv_end", c, "relu_end")
        L.append(Layer("conv_end", "Convolution", ("bn_conv_end",), "conv_end", in_ch, c))
        L.append(Layer("HR_recovery", "Eltwise", ("data", "conv_end"), "HR_recovery"))
        return L
    outs = []
    for m in range(1, m_blocks + 1):
        t = f"end_{m:02d}"
        _bn_scale_relu(L, f"conv_{t}", f"conv_transition_{m:02d}", f"bn_conv_{t}", c, f"relu_{t}")
        L.append(Layer(f"conv_{t}", "Convolution", (f"bn_conv_{t}",), f"conv_{t}", in_ch, c,
                       params=("Recon_w", "Recon_b")))
        L.append(Layer(f"HR_recovery_{m:02d}", "Eltwise", ("data", f"conv_{t}"), f"HR_recovery_{m:02d}"))
        L.append(Layer(f"weight_output_{t}", "ScaleNoBias", (f"HR_recovery_{m:02d}",), f"weight_output_{t}", in_ch))
        outs.append(f"weight_output_{t}")
    L.append(Layer("HR_recovery", "Eltwise", tuple(outs), "HR_recovery"))
    return L


class CaffeNet(nn.Module):
    """Runs a :func:`memnet_layers` list; learnable blobs in ``blobs`` keyed by the Caffe blob name
    (``<layer>:w`` / ``<layer>:b`` or the shared ``param`` name), BN statistics as buffers."""

    def __init__(self, layers: list[Layer]):
        super().__init__()
        self.layers = layers
        self.blobs = nn.ParameterDict()
        self.stats = nn.Module()
        for ly in layers:
            if ly.type == "BatchNorm":
                self.stats.register_buffer(f"{ly.name}_mean", torch.zeros(ly.channels))
                self.stats.register_buffer(f"{ly.name}_var", torch.ones(ly.channels))
            elif ly.type == "Scale":
                self.blobs[f"{ly.name}:w"] = nn.Parameter(torch.ones(ly.channels))
                self.blobs[f"{ly.name}:b"] = nn.Parameter(torch.zeros(ly.channels))
            elif ly.type == "ScaleNoBias":
                self.blobs[f"{ly.name}:w"] = nn.Parameter(torch.ones(ly.channels))
            elif ly.type == "Convolution":
                w, b = self.blob_names(ly)
                if w not in self.blobs:
                    self.blobs[w] = nn.Parameter(torch.randn(ly.channels, ly.in_channels, ly.kernel_size,
                                                             ly.kernel_size) * 0.05)
                    self.blobs[b] = nn.Parameter(torch.zeros(ly.channels))

    @staticmethod
    def blob_names(ly: Layer) -> tuple[str, str]:
        return ly.params if ly.params else (f"{ly.name}:w", f"{ly.name}:b")

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        blobs = {"data": data}
        top = "data"
        for ly in self.layers:
            x = [blobs[b] for b in ly.bottoms]
            if ly.type == "BatchNorm":
                mean, var = getattr(self.stats, f"{ly.name}_mean"), getattr(self.stats, f"{ly.name}_var")
                y = F.batch_norm(x[0], mean.clone(), var.clone(), None, None, self.training, 0.0, 1e-5)
            elif ly.type in ("Scale", "ScaleNoBias"):
                y = x[0] * self.blobs[f"{ly.name}:w"].view(1, -1, 1, 1)
                if ly.type == "Scale":
                    y = y + self.blobs[f"{ly.name}:b"].view(1, -1, 1, 1)
            elif ly.type == "ReLU":
                y = torch.relu(x[0])
            elif ly.type == "Convolution":
                w, b = self.blob_names(ly)
                y = F.conv2d(x[0], self.blobs[w], self.blobs[b], padding=ly.kernel_size // 2)
            elif ly.type == "Eltwise":
                y = x[0]
                for t in x[1:]:
                    y = y + t
            elif ly.type == "Concat":
                y = torch.cat(x, dim=1)
            else:
                raise ValueError(ly.type)
            blobs[ly.top] = y
            top = ly.top
        return blobs[top]


def learnable_blob_values(layers: list[Layer]) -> int:
    """Learnable values of a layer list, a shared ``param`` name counted once (BatchNorm's blobs are not learnt)."""
    seen: dict[str, int] = {}
    for ly in layers:
        if ly.type == "Scale":
            seen[f"{ly.name}:w"] = seen[f"{ly.name}:b"] = ly.channels
        elif ly.type == "ScaleNoBias":
            seen[f"{ly.name}:w"] = ly.channels
        elif ly.type == "Convolution":
            w, b = CaffeNet.blob_names(ly)
            seen[w] = ly.channels * ly.in_channels * ly.kernel_size**2
            seen[b] = ly.channels
    return sum(seen.values())


def to_caffe(sd: dict[str, torch.Tensor], m_blocks: int, recursions: int, multi: bool, fenet_norm: bool = True,
             shared: bool = True) -> dict[str, torch.Tensor]:
    """Key mapping: a built ``memnet`` spec's state dict (archsearch names) -> :class:`CaffeNet` names."""
    out: dict[str, torch.Tensor] = {}

    def bn(ours: str, tag: str) -> None:
        out[f"blobs.scale_{tag}:w"] = sd[f"{ours}.weight"]
        out[f"blobs.scale_{tag}:b"] = sd[f"{ours}.bias"]
        out[f"stats.bn_{tag}_mean"] = sd[f"{ours}.running_mean"]
        out[f"stats.bn_{tag}_var"] = sd[f"{ours}.running_var"]

    def conv(ours: str, w: str, b: str) -> None:
        out[f"blobs.{w}"] = sd[f"{ours}.weight"]
        out[f"blobs.{b}"] = sd[f"{ours}.bias"]

    if fenet_norm:
        bn("blocks.fenet_bn", "conv1")
    conv("blocks.fenet", "conv1:w", "conv1:b")
    for m in range(1, m_blocks + 1):
        pre = f"blocks.memory{m}"
        for r in range(1, recursions + 1):
            t = f"{m:02d}_{r:02d}"
            for i, ab in ((1, "a"), (2, "b")):
                bn(f"{pre}.bn{i}.{r - 1}", f"conv{t}_{ab}")
                if shared:
                    conv(f"{pre}.conv{i}.0", f"conv{m:02d}_w{ab}", f"conv{m:02d}_b{ab}")
                else:
                    conv(f"{pre}.conv{i}.{r - 1}", f"conv{t}_{ab}:w", f"conv{t}_{ab}:b")
        bn(f"{pre}.gate.0", f"conv_transition_{m:02d}")
        conv(f"{pre}.gate.2", f"conv_transition_{m:02d}:w", f"conv_transition_{m:02d}:b")
    if multi:
        for m in range(1, m_blocks + 1):
            bn(f"blocks.recon.norms.{m - 1}", f"conv_end_{m:02d}")
            out[f"blobs.weight_output_end_{m:02d}:w"] = sd["blocks.recon.weights"][m - 1:m]
        conv("blocks.recon.conv", "Recon_w", "Recon_b")
    else:
        bn("blocks.recon_bn", "conv_end")
        conv("blocks.recon", "conv_end:w", "conv_end:b")
    return out
