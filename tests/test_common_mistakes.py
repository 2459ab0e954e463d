"""The common beginner mistakes get errors (or one warning) that name the argument and the shape or value.

A missing batch dimension on every public method (``_reliability_cases.METHODS``), a model left in training mode
with BatchNorm or dropout, and negative targets. Each message is checked for the argument's name and the shape or
value involved; the original failure stays chained as ``__cause__``.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from _reliability_cases import METHODS, cnn, images, run
from intellego.attr import DeepLift, IntegratedGradients, Occlusion, Saliency
from intellego.errors import IntellegoError

pytestmark = pytest.mark.usefixtures("one_thread")


def _conv_net() -> nn.Module:
    """The issue's case: a conv net on 3-channel 32x32 images, flattened into a linear head."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 30 * 30, 5)).eval()


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


@pytest.mark.parametrize("call, raw", [
    (lambda m, x: IntegratedGradients(m).attribute(x, target=1), "to have 3 channels"),
    (lambda m, x: Saliency(m).attribute(x, target=1), "mat1 and mat2 shapes cannot be multiplied"),
    (lambda m, x: Occlusion(m).attribute(x, sliding_window_shapes=(3, 5, 5), target=1), "sliding_window_shapes"),
])
def test_a_missing_batch_dimension_names_the_shape_and_the_fix(call, raw):
    """The raw errors torch (or the window check, which blamed the window) gave before are kept as the cause."""
    x = torch.randn(3, 32, 32)
    with pytest.raises(IntellegoError) as info:
        call(_conv_net(), x)
    message = str(info.value)
    assert "inputs has shape (3, 32, 32)" in message and "inputs.unsqueeze(0) (shape (1, 3, 32, 32))" in message
    assert raw in str(info.value.__cause__)
    call(_conv_net(), x.unsqueeze(0))  # the suggested fix works


def test_occlusion_with_a_per_example_window_on_an_unbatched_image():
    """A (5, 5) window fits the unbatched (3, 32, 32) read as 3 examples, so the model failed on the occluded copies;
    the error names the input, not the window."""
    with pytest.raises(IntellegoError, match=r"inputs has shape \(3, 32, 32\).*unsqueeze\(0\)") as info:
        Occlusion(_conv_net()).attribute(torch.randn(3, 32, 32), sliding_window_shapes=(5, 5), target=1)
    assert "to have 3 channels" in str(info.value.__cause__)


def test_a_missing_batch_dimension_on_a_linear_model_whose_output_is_not_one_row_per_example():
    """An MLP runs on a (6,) vector but returns (3,): three 'examples' for six inputs; the error says so."""
    with pytest.raises(IntellegoError, match=r"inputs has shape \(6,\).*dimension 0 has size 3.*inputs\.unsqueeze"):
        IntegratedGradients(_mlp()).attribute(torch.randn(6), target=1)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_names_a_missing_batch_dimension(name):
    one = images(1)[0]
    with pytest.raises(IntellegoError, match=r"inputs has shape \(3, 8, 8\).*inputs\.unsqueeze\(0\)"):
        run(name, cnn(), one)


def test_several_inputs_without_their_batch_dimension():
    net = _mlp()
    with pytest.raises(IntellegoError, match=r"inputs have shapes \[\(2,\), \(4,\)\].*tuple\(x\.unsqueeze\(0\)"):
        Saliency(lambda a, b: net(torch.cat([a, b], -1))).attribute((torch.randn(2), torch.randn(4)), target=0)


def test_a_real_batch_that_fails_for_another_reason_keeps_its_own_error():
    """The diagnosis runs the model on the inputs as given: a batch the model keeps as a batch is not blamed."""
    def picky(x):
        if x.requires_grad:
            raise RuntimeError("this model refuses gradients")
        return x.sum(1, keepdim=True)

    with pytest.raises(RuntimeError, match="refuses gradients") as info:
        Saliency(picky).attribute(torch.randn(4, 3))
    assert not isinstance(info.value, IntellegoError)


def test_the_diagnosis_leaves_the_model_as_it_was():
    """The probe runs in eval mode: training flags come back and BatchNorm statistics are not updated."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    net[3].eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with warnings.catch_warnings(), pytest.raises(IntellegoError, match="unsqueeze"):
        warnings.simplefilter("ignore")
        Saliency(net).attribute(torch.randn(6), target=0)
    assert [m.training for m in net.modules()] == [True, True, True, True, False]
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def _bn_cnn() -> nn.Module:
    """The reliability CNN with a BatchNorm after its first convolution (``model[3]`` stays the second conv)."""
    model = cnn()
    model[0] = nn.Sequential(model[0], nn.BatchNorm2d(4))
    return model.train()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_warns_once_about_batchnorm_in_training_mode(name):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run(name, _bn_cnn(), images(2))
    told = [str(w.message) for w in seen if "training mode" in str(w.message)]
    assert len(told) == 1, told
    assert "BatchNorm layers 0.1 (BatchNorm2d)" in told[0] and "model.eval()" in told[0]


def test_the_warning_is_warranted_and_absent_in_eval_mode():
    """In training mode example 0's attribution changes with the rest of the batch; in eval mode it does not,
    and nothing is said."""
    x = images(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = Saliency(_bn_cnn()).attribute(x[:1], target=0)
        batched = Saliency(_bn_cnn()).attribute(x, target=0)[:1]
    assert (alone - batched).abs().max() > 1e-3 * alone.abs().max()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = _bn_cnn().eval()
        torch.testing.assert_close(Saliency(model).attribute(x[:1], target=0),
                                   Saliency(model).attribute(x, target=0)[:1])


def test_deeplift_names_dropout_and_batchnorm_in_training_mode_once():
    """DeepLift's own rule warning would name them too; the guard's warning is the only one about them."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        DeepLift(net).attribute(torch.randn(4, 5), target=0)
    texts = [str(w.message) for w in seen]
    assert sum("dropout" in t for t in texts) == 1 and sum("batch" in t.lower() for t in texts) == 1, texts
    assert "3 (Dropout)" in texts[0] and "1 (BatchNorm1d)" in texts[0]


@pytest.mark.parametrize("target, shown", [
    (-1, "-1"), ((0, -2), r"\(0, -2\)"), ([0, -100, 2, -1], r"\[-100, -1\]"), (torch.tensor([1, -1, 0, 0]), r"\[-1\]"),
    (torch.tensor(-3), r"\[-3\]"),
])
def test_negative_targets_are_named(target, shown):
    """torch would index -1 from the end; a negative target is almost always a placeholder label."""
    model = _mlp() if not isinstance(target, tuple) else (lambda x: _mlp()(x).unsqueeze(-1).expand(-1, 3, 3))
    with pytest.raises(IntellegoError, match=rf"target must index the model's outputs from 0, got the negative .*"
                                             rf"{shown}"):
        Saliency(model).attribute(torch.randn(4, 6), target=target)


def test_captum_reads_a_negative_target_from_the_end():
    """What the error prevents: Captum silently attributes class ``n - 1`` for ``target=-1``."""
    captum_attr = pytest.importorskip("captum.attr")
    x = torch.randn(4, 6)
    last = captum_attr.Saliency(_mlp()).attribute(x, target=2)
    torch.testing.assert_close(captum_attr.Saliency(_mlp()).attribute(x, target=-1), last)
    torch.testing.assert_close(Saliency(_mlp()).attribute(x, target=2), last)
