"""The cells MindSpore compiles: loss, train step (loss scaling, clipping, Adam), inference."""

from __future__ import annotations

import mindspore as ms
from mindspore import Tensor, nn, ops
from mindspore.nn.wrap.loss_scale import _grad_scale

_all_finite = ops.MultitypeFuncGraph("_all_finite")


@_all_finite.register("Tensor")
def _tensor_all_finite(grad: Tensor) -> Tensor:
    return ops.isfinite(grad).all()


class LossCell(nn.Cell):
    """The official loss: CTC per utterance, mean over the batch (not over labels)."""

    def __init__(self, net: nn.Cell, blank: int):
        # auto_prefix=False keeps the network's parameter names (no "net." in front).
        super().__init__(auto_prefix=False)
        self.net = net
        self.blank = blank

    def construct(self, features: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        log_probs, out_lengths = self.net(features, lengths)
        # zero_infinity as in the PyTorch backend: an utterance that cannot align adds nothing.
        loss, _ = ops.ctc_loss(log_probs.transpose(1, 0, 2), targets, out_lengths, target_lengths, self.blank,
                               "none", True)
        return loss.mean()


class TrainStep(nn.TrainOneStepWithLossScaleCell):
    """Loss and gradients with dynamic loss scaling (starting at the official 1024) and
    clipping by global norm; returns (loss, overflow, gradients). The caller applies the
    optimizer when there was no overflow (and halves nothing: the scale manager has done
    that already).

    The optimizer runs as its own graph rather than under ``if not overflow:`` in this
    one, as MindSpore's TrainOneStepWithLossScaleCell does: in MindSpore 2.10 a graph
    that calls the optimizer inside that branch keeps the learning rate it was compiled
    with, so a schedule that sets the ``learning_rate`` Parameter would have no effect."""

    def __init__(self, loss_cell: nn.Cell, optimizer: nn.Optimizer, loss_scale: float, grad_clip: float):
        manager = nn.DynamicLossScaleUpdateCell(loss_scale_value=loss_scale, scale_factor=2, scale_window=1000)
        super().__init__(loss_cell, optimizer, manager)
        self.grad_clip = float(grad_clip)
        # MindSpore's overflow check covers GPU and Ascend (float-status registers); on CPU
        # the gradients are checked for inf/nan directly.
        self.cpu_target = ms.get_context("device_target") == "CPU"

    def construct(self, features: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor):
        loss = self.network(features, lengths, targets, target_lengths)
        scaling_sens = self.scale_sense
        status = Tensor([0] * 8, ms.int32)  # the float-status buffer Ascend uses
        scaling_sens_filled = ops.ones_like(loss) * ops.cast(scaling_sens, ops.dtype(loss))
        grads = self.grad(self.network, self.weights)(features, lengths, targets, target_lengths,
                                                      scaling_sens_filled)
        grads = self.hyper_map(ops.partial(_grad_scale, scaling_sens), grads)
        grads = self.grad_reducer(grads)
        if self.cpu_target:
            cond = ops.logical_not(ops.stack(self.hyper_map(_all_finite, grads)).all())
        else:
            cond = self.get_overflow_status(status, grads)
        overflow = self.process_loss_scale(cond)
        if self.grad_clip > 0:
            grads = ops.clip_by_global_norm(grads, self.grad_clip)
        return loss, overflow, grads


class Inference(nn.Cell):
    """The network in eval mode, compiled once with dynamic batch and time (``set_inputs``)."""

    def __init__(self, net: nn.Cell):
        super().__init__(auto_prefix=False)
        self.net = net

    def construct(self, features: Tensor, lengths: Tensor):
        return self.net(features, lengths)
