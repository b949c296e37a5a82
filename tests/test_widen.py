"""Widening a trained network (Net2WiderNet): same logits, copies free to diverge, refusals."""

from __future__ import annotations

import pytest
import torch

from monai_attn.networks import GridAttentionUNet
from monai_attn.networks.widen import widen_state_dict


def _trained_like(net: GridAttentionUNet, shape: tuple[int, ...]) -> GridAttentionUNet:
    """``net`` with non-trivial batch-norm statistics (a few training-mode passes)."""
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(2, *shape))
    return net


@pytest.mark.parametrize("dims, options", [
    (3, dict(attention_heads=2, deep_supervision=True)),
    (2, dict(attention_heads=1, deep_supervision="fused", cbam=True, input_pyramid=True, norm="instance")),
])
def test_widened_network_computes_the_same_logits(dims, options):
    torch.manual_seed(0)
    shape = (1, *[32] * dims)
    narrow = _trained_like(GridAttentionUNet(dims, 1, 4, channels=(4, 8, 16, 32, 64), **options), shape)
    wide = GridAttentionUNet(dims, 1, 4, channels=(8, 16, 32, 64, 128), **options)
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide, torch.Generator().manual_seed(1)))
    x = torch.randn(2, *shape)
    with torch.no_grad():
        narrow.eval(), wide.eval()
        torch.testing.assert_close(wide(x), narrow(x), rtol=1e-4, atol=1e-4)
        narrow.train(), wide.train()
        wide_out, narrow_out = wide(x), narrow(x)  # training mode: batch statistics, every head
        torch.testing.assert_close(wide_out, narrow_out, rtol=1e-3, atol=1e-3)
    assert sum(p.numel() for p in wide.parameters()) > 3 * sum(p.numel() for p in narrow.parameters())


def test_copies_of_a_channel_get_different_gradients():
    """An even split would keep the two copies identical for ever; random shares do not."""
    torch.manual_seed(0)
    narrow = GridAttentionUNet(3, 1, 4, channels=(4, 8, 16))
    wide = GridAttentionUNet(3, 1, 4, channels=(8, 16, 32))
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide, torch.Generator().manual_seed(1)))
    first = wide.encoder[0].conv[0].conv.weight
    torch.testing.assert_close(first[0], first[1])  # copies start equal
    wide.train()
    wide(torch.randn(2, 1, 16, 16, 16)).square().mean().backward()
    assert not torch.allclose(first.grad[0], first.grad[1])


def test_refusals_name_the_entry():
    narrow = GridAttentionUNet(2, 1, 4, channels=(4, 8, 16))
    with pytest.raises(ValueError, match=r"encoder\.0\.conv\.0\.conv\.weight: 6 channels are not a multiple of 4"):
        widen_state_dict(narrow.state_dict(), GridAttentionUNet(2, 1, 4, channels=(6, 12, 24)))
    state = narrow.state_dict()
    del state["heads.0.bias"]
    with pytest.raises(ValueError, match=r"heads\.0\.bias: not in the narrow"):
        widen_state_dict(state, GridAttentionUNet(2, 1, 4, channels=(8, 16, 32)))
    attention = GridAttentionUNet(2, 1, 4, channels=(4, 8, 16), self_attention=True)
    with pytest.raises(ValueError, match="bottleneck_attention: a SelfAttention cannot be widened"):
        widen_state_dict(attention.state_dict(), GridAttentionUNet(2, 1, 4, channels=(8, 16, 32), self_attention=True))
