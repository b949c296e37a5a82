"""Tests for the attention gates and GridAttentionUNet (2D and 3D, small sizes, CPU)."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

from monai_attn.networks import (
    CBAM,
    GridAttentionGate,
    GridAttentionUNet,
    MultiHeadGridAttention,
    SelfAttention,
)

SMALL = (4, 8, 16, 32)  # 4 levels: spatial sizes must be multiples of 8


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- gate


@pytest.mark.parametrize("dims", [2, 3])
def test_gate_shapes_and_alpha_range(dims):
    gate = GridAttentionGate(dims, in_channels=6, gating_channels=10, inter_channels=4)
    x = torch.randn(2, 6, *([12] * dims))
    g = torch.randn(2, 10, *([6] * dims))
    out, alpha = gate(x, g)
    assert out.shape == x.shape
    assert alpha.shape == (2, 1, *([12] * dims))
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert alpha.std() > 0  # not a constant map


def test_gate_gating_signal_on_another_grid_is_resized():
    """g may be coarser than theta_x's grid (sub_sample_factor=1 here): phi_g is resized."""
    gate = GridAttentionGate(3, in_channels=4, gating_channels=8, sub_sample_factor=1)
    out, alpha = gate(torch.randn(1, 4, 8, 8, 8), torch.randn(1, 8, 2, 2, 2))
    assert out.shape == (1, 4, 8, 8, 8) and alpha.shape == (1, 1, 8, 8, 8)


def test_gate_matches_formula_2d():
    """Recompute the additive gate by hand with functional ops (eval mode, default BN stats)."""
    gate = GridAttentionGate(2, in_channels=3, gating_channels=5, inter_channels=4).eval()
    x = torch.randn(1, 3, 8, 8)
    g = torch.randn(1, 5, 4, 4)
    theta_x = F.conv2d(x, gate.theta.weight, stride=2)  # (1, 4, 4, 4), no bias
    phi_g = F.conv2d(g, gate.phi.weight, gate.phi.bias)  # already on theta_x's grid
    alpha = torch.sigmoid(F.conv2d(F.relu(theta_x + phi_g), gate.psi.weight, gate.psi.bias))
    alpha = F.interpolate(alpha, size=(8, 8), mode="bilinear", align_corners=False)
    w_conv = gate.W.conv
    bn = gate.W.adn.N
    expected = F.conv2d(alpha * x, w_conv.weight, w_conv.bias) / math.sqrt(1 + bn.eps)
    out, got_alpha = gate(x, g)
    torch.testing.assert_close(got_alpha, alpha)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("dims", [2, 3])
def test_gate_zero_psi_gives_constant_sigmoid_of_bias(dims):
    gate = GridAttentionGate(dims, in_channels=4, gating_channels=8).eval()
    bias = 0.37
    with torch.no_grad():
        gate.psi.weight.zero_()
        gate.psi.bias.fill_(bias)
    x = torch.randn(2, 4, *([8] * dims))
    out, alpha = gate(x, torch.randn(2, 8, *([4] * dims)))
    expected = 1.0 / (1.0 + math.exp(-bias))
    torch.testing.assert_close(alpha, torch.full_like(alpha, expected))
    torch.testing.assert_close(out, gate.W(expected * x))


def test_gate_gradients_reach_theta_phi_psi():
    gate = GridAttentionGate(3, in_channels=4, gating_channels=8)
    out, alpha = gate(torch.randn(2, 4, 8, 8, 8), torch.randn(2, 8, 4, 4, 4))
    (out.square().mean() + alpha.mean()).backward()
    for name in ("theta", "phi", "psi"):
        grad = getattr(gate, name).weight.grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_multiplicative_mode_differs_from_additive():
    additive = GridAttentionGate(3, 4, 8, mode="additive")
    multiplicative = GridAttentionGate(3, 4, 8, mode="multiplicative")
    multiplicative.load_state_dict(additive.state_dict())
    x, g = torch.randn(1, 4, 8, 8, 8), torch.randn(1, 8, 4, 4, 4)
    assert not torch.allclose(additive(x, g)[1], multiplicative(x, g)[1])


def test_gate_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of"):
        GridAttentionGate(3, 4, 8, mode="concat")


def test_multi_head_gate_alpha_is_mean_of_heads():
    block = MultiHeadGridAttention(3, in_channels=4, gating_channels=8, n_heads=3).eval()
    x, g = torch.randn(2, 4, 8, 8, 8), torch.randn(2, 8, 4, 4, 4)
    out, alpha = block(x, g)
    assert out.shape == x.shape and alpha.shape == (2, 1, 8, 8, 8)
    heads = torch.stack([head(x, g)[1] for head in block.heads])
    torch.testing.assert_close(alpha, heads.mean(dim=0))


def test_cbam_and_self_attention_keep_shape():
    x = torch.randn(2, 16, 4, 6, 8)
    assert CBAM(3, 16)(x).shape == x.shape
    attention = SelfAttention(3, 16)
    torch.testing.assert_close(attention(x), x)  # gamma starts at 0: identity
    with torch.no_grad():
        attention.gamma.fill_(1.0)
    assert not torch.allclose(attention(x), x)


# --------------------------------------------------------------------------- network


@pytest.mark.parametrize(
    "dims,size", [(2, (32, 32)), (2, (24, 40)), (3, (16, 16, 16)), (3, (16, 24, 8))]
)
def test_unet_output_shapes(dims, size):
    net = GridAttentionUNet(dims, in_channels=2, out_channels=3, channels=SMALL).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 2, *size))
    assert out.shape == (2, 3, *size)


def test_unet_deep_supervision_list_in_training_single_tensor_in_eval():
    net = GridAttentionUNet(3, 1, 4, channels=SMALL, deep_supervision=True)
    x = torch.randn(2, 1, 16, 24, 32)
    outs = net.train()(x)
    assert isinstance(outs, list)
    assert [tuple(o.shape) for o in outs] == [
        (2, 4, 16, 24, 32),
        (2, 4, 8, 12, 16),
        (2, 4, 4, 6, 8),
    ]
    with torch.no_grad():
        single = net.eval()(x)
    assert isinstance(single, torch.Tensor) and single.shape == (2, 4, 16, 24, 32)


def test_unet_fused_deep_supervision_returns_one_tensor():
    net = GridAttentionUNet(2, 1, 3, channels=SMALL, deep_supervision="fused")
    assert len(net.heads) == 3 and net.fuse is not None
    x = torch.randn(2, 1, 32, 16)
    out = net.train()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 32, 16)
    out.mean().backward()
    assert all(head.weight.grad is not None for head in net.heads)


def test_plain_unet_is_the_same_backbone_without_gates():
    gated = GridAttentionUNet(3, 1, 4, channels=SMALL, attention=True)
    plain = GridAttentionUNet(3, 1, 4, channels=SMALL, attention=False)
    gate_types = (GridAttentionGate, MultiHeadGridAttention)
    assert not any(isinstance(m, gate_types) for m in plain.modules())
    assert plain.gating is None
    assert n_params(plain) < n_params(gated)
    gated_shapes = {k: v.shape for k, v in gated.state_dict().items()}
    for key, value in plain.state_dict().items():
        assert gated_shapes[key] == value.shape, key
    extra = set(gated_shapes) - set(plain.state_dict())
    assert extra and all(k.startswith("gating.") or ".gate." in k for k in extra)


def test_default_3d_config_parameter_counts_near_paper():
    """Oktay et al. report 5.88M (U-Net) and 6.40M (Attention U-Net) parameters."""
    plain = n_params(GridAttentionUNet(3, 1, 4, attention=False))
    gated = n_params(GridAttentionUNet(3, 1, 4, attention=True))
    assert abs(plain - 5.88e6) / 5.88e6 < 0.01
    assert abs(gated - 6.40e6) / 6.40e6 < 0.02


@pytest.mark.parametrize("deep_supervision", [False, True, "fused"])
def test_torchscript_matches_eager(deep_supervision):
    net = GridAttentionUNet(3, 1, 3, channels=SMALL, deep_supervision=deep_supervision).eval()
    scripted = torch.jit.script(net)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))
        eager_out, eager_alphas = net.forward_with_attention(x)
        script_out, script_alphas = scripted.forward_with_attention(x)
    torch.testing.assert_close(script_out, eager_out)
    assert len(script_alphas) == len(eager_alphas) == 2
    for a, b in zip(script_alphas, eager_alphas):
        torch.testing.assert_close(a, b)


def test_bad_spatial_size_raises_value_error_naming_shape_and_divisor():
    net = GridAttentionUNet(3, 1, 2, channels=SMALL).eval()
    with pytest.raises(ValueError, match=r"\[16, 20, 16\] must be divisible by 8"):
        net(torch.randn(1, 1, 16, 20, 16))
    with pytest.raises(ValueError, match="3 spatial dims"):
        net(torch.randn(1, 1, 16, 16))
    scripted = torch.jit.script(net)
    with pytest.raises(Exception, match="must be divisible by 8"):
        scripted(torch.randn(1, 1, 16, 20, 16))


def test_forward_with_attention_shapes_order_and_output():
    net = GridAttentionUNet(3, 1, 4, channels=(4, 8, 16, 32, 64), deep_supervision=True).eval()
    x = torch.randn(2, 1, 32, 32, 16)
    with torch.no_grad():
        logits, alphas = net.forward_with_attention(x)
        torch.testing.assert_close(logits, net(x))
    assert [tuple(a.shape) for a in alphas] == [(2, 1, 16, 16, 8), (2, 1, 8, 8, 4), (2, 1, 4, 4, 2)]
    assert all(a.min() >= 0 and a.max() <= 1 for a in alphas)
    _, none = GridAttentionUNet(3, 1, 4, channels=SMALL, attention=False).eval().forward_with_attention(
        torch.randn(1, 1, 8, 8, 8)
    )
    assert none == []


@pytest.mark.parametrize(
    "options",
    [
        {"self_attention": True},
        {"cbam": True},
        {"input_pyramid": True},
        {"attention_heads": 1, "attention_mode": "multiplicative"},
        {"norm": "instance", "dropout": 0.2},
        {"self_attention": True, "cbam": True, "input_pyramid": True, "deep_supervision": True},
    ],
)
@pytest.mark.parametrize("dims", [2, 3])
def test_unet_options_run_and_backprop(options, dims):
    net = GridAttentionUNet(dims, 1, 2, channels=SMALL, **options).train()
    out = net(torch.randn(2, 1, *([16] * dims)))
    main = out[0] if isinstance(out, list) else out
    assert main.shape == (2, 2, *([16] * dims))
    main.mean().backward()
    assert net.encoder[0].conv[0].conv.weight.grad is not None


def test_unet_rejects_bad_configuration():
    with pytest.raises(ValueError, match="deep_supervision"):
        GridAttentionUNet(3, 1, 2, deep_supervision="yes")
    with pytest.raises(ValueError, match="spatial_dims"):
        GridAttentionUNet(1, 1, 2)
    with pytest.raises(ValueError, match="at least 3 levels"):
        GridAttentionUNet(3, 1, 2, channels=(8, 16))


def _sphere_volume(size: int = 32, radius: float = 7.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright noisy sphere in noise: image (1, 1, S, S, S) and labels (1, 1, S, S, S)."""
    grid = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * 3, indexing="ij"))
    inside = ((grid - (size - 1) / 2).square().sum(0) <= radius**2).float()
    generator = torch.Generator().manual_seed(1)
    image = inside + 0.3 * torch.randn(inside.shape, generator=generator)
    return image[None, None], inside[None, None].long()


def _foreground_dice(logits: torch.Tensor, labels: torch.Tensor) -> float:
    pred = logits.argmax(dim=1, keepdim=True)
    tp = ((pred == 1) & (labels == 1)).sum().item()
    return 2 * tp / ((pred == 1).sum().item() + (labels == 1).sum().item())


def test_tiny_overfit_drives_dice_up():
    from monai.losses import DiceCELoss

    image, labels = _sphere_volume(size=24, radius=5.5)
    net = GridAttentionUNet(3, 1, 2, channels=(4, 8, 16), attention_heads=1)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    with torch.no_grad():
        before = _foreground_dice(net.eval()(image), labels)
    start = time.perf_counter()
    net.train()
    for _ in range(40):
        optimizer.zero_grad()
        loss_fn(net(image), labels).backward()
        optimizer.step()
    with torch.no_grad():
        after = _foreground_dice(net.eval()(image), labels)
    assert before < 0.3
    assert after > 0.8, f"Dice {before:.3f} -> {after:.3f} after {time.perf_counter() - start:.1f} s"
