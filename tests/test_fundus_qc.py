"""Quality control of optic disc and cup segmentations: is the drawn disc the optic disc?"""

from __future__ import annotations

import numpy as np
import pytest

from monai_attn.fundus_qc import fundus_qc
from monai_attn.synthetic.retina import generate_retina_case


@pytest.fixture(scope="module")
def phantom() -> tuple[np.ndarray, np.ndarray]:
    """A held-out fundus phantom as the pipeline holds it: labels (X, Y), photograph (C, X, Y)."""
    image, labels, _ = generate_retina_case(1000, 2, size=384)
    return labels.T.copy(), np.moveaxis(image, 2, 0).transpose(0, 2, 1).copy()


def disc_at(shape: tuple[int, int], centre: tuple[float, float], diameter: float, cup: float = 0.4) -> np.ndarray:
    """A round disc (rim 1) with a round cup (2) of ``cup`` times its diameter, on an (X, Y) grid."""
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    r = np.hypot(x - centre[0], y - centre[1])
    return np.where(r <= cup * diameter / 2, 2, np.where(r <= diameter / 2, 1, 0)).astype(np.uint8)


def test_the_reference_disc_passes_every_check(phantom) -> None:
    labels, image = phantom
    qc = fundus_qc(labels, image)
    assert qc.status == "ok" and qc.reasons == [], qc.verdict()
    m = qc.measures
    assert m["disc_components"] == 1 and m["cup_outside_disc_fraction"] == 0.0
    assert 1 / 12 < m["disc_field_fraction"] < 1 / 4  # the generator's disc sizes
    assert m["vessel_ratio"] > 2.0  # the vessels converge on the disc


def test_a_disc_drawn_on_the_edge_of_the_field_is_not_where_the_vessels_converge(phantom) -> None:
    labels, image = phantom
    diameter = fundus_qc(labels, image).measures["disc_diameter_px"]
    edge = disc_at(labels.shape, (0.09 * labels.shape[0], labels.shape[1] / 2), diameter)  # glare crescents lie there
    qc = fundus_qc(edge, image)
    assert qc.status == "warn" and qc.measures["vessel_ratio"] < 1.6
    assert any("not where the large vessels converge" in r for r in qc.reasons)


def test_missing_small_doubled_and_cupless_discs(phantom) -> None:
    labels, image = phantom
    nothing = fundus_qc(np.zeros_like(labels), image)
    assert nothing.status == "fail" and nothing.reasons == ["no optic disc found"]
    small = fundus_qc(disc_at(labels.shape, np.argwhere(labels > 0).mean(0), 12), image)
    assert small.status == "warn" and any("of the field's diameter" in r for r in small.reasons)
    doubled = labels.copy()
    doubled[disc_at(labels.shape, (0.3 * labels.shape[0], 0.3 * labels.shape[1]), 40) > 0] = 1
    assert "2 disc candidates" in fundus_qc(doubled, image).reasons
    cupless = np.where(labels == 2, 1, labels).astype(np.uint8)
    assert "no cup found" in fundus_qc(cupless, image).reasons
    tall = np.where(labels > 0, 2, 0).astype(np.uint8)  # a cup as tall as the disc
    assert any("cup-to-disc ratio 1.00 above 0.9" in r for r in fundus_qc(tall, image).reasons)


def test_a_disc_centred_crop_is_judged_against_the_picture(phantom) -> None:
    labels, image = phantom
    x, y = np.argwhere(labels > 0).mean(0).astype(int)
    half = int(1.5 * fundus_qc(labels, image).measures["disc_diameter_px"])  # three disc diameters across
    crop = (slice(x - half, x + half), slice(y - half, y + half))  # the field of view fills the crop
    qc = fundus_qc(labels[crop], image[(slice(None), *crop)])
    assert qc.measures["field_diameter_px"] == 2 * half and qc.status == "ok", qc.verdict()
    assert qc.measures["vessel_ratio"] is None  # the disc's surroundings are most of the crop: not compared


def test_the_locating_step_takes_the_disc_the_vessels_converge_on_not_the_largest(phantom) -> None:
    from monai_attn.fundus_qc import disc_where_vessels_converge

    labels, image = phantom
    diameter = fundus_qc(labels, image).measures["disc_diameter_px"]
    glare = disc_at(labels.shape, (0.1 * labels.shape[0], labels.shape[1] / 2), 1.4 * diameter)  # larger than the disc
    both = np.maximum(labels, glare)
    chosen = disc_where_vessels_converge(both, image)
    np.testing.assert_array_equal(chosen, labels > 0)
    assert disc_where_vessels_converge(glare, image).sum() == (glare > 0).sum()  # one candidate: that one
    assert disc_where_vessels_converge(np.zeros_like(labels), image) is None


def test_an_uncertain_rim_or_cup_warns_and_the_entropies_are_kept(phantom) -> None:
    from monai_attn.fundus_qc import ENTROPY_WARN

    labels, image = phantom
    sure = fundus_qc(labels, image, entropy={0: 0.01, 1: 0.05, 2: 0.08})
    assert sure.status == "ok" and sure.measures["rim_entropy"] == 0.05 and sure.measures["cup_entropy"] == 0.08
    unsure = fundus_qc(labels, image, entropy={1: ENTROPY_WARN + 0.1, 2: 0.08})
    assert unsure.status == "warn"
    assert unsure.reasons == [f"uncertain rim (entropy {ENTROPY_WARN + 0.1:.2f}, expected <= {ENTROPY_WARN})"]
    assert "rim_entropy" not in fundus_qc(labels, image).measures  # no entropy given: not judged


def test_the_pipeline_passes_the_networks_entropy_to_the_fundus_qc(phantom) -> None:
    """LogitsToLabelsd's per-label entropy reaches FundusQCd: sure logits pass, flat ones on the rim warn."""
    import torch
    from monai.data import MetaTensor

    from monai_attn.inference import FundusQCd, LogitsToLabelsd

    labels, image = phantom
    logits = 8.0 * torch.nn.functional.one_hot(torch.as_tensor(labels, dtype=torch.long), 3).permute(2, 0, 1).float()
    pipeline = [LogitsToLabelsd("pred"), FundusQCd()]
    data = {"pred": MetaTensor(logits), "input": image}
    for step in pipeline:
        data = step(data)
    assert data["qc"].status == "ok" and data["qc"].measures["rim_entropy"] < 0.01, data["qc"].verdict()
    flat = logits.clone()
    flat[:, torch.as_tensor(labels == 1)] = torch.tensor([0.0, 0.2, 0.0])[:, None]  # rim barely above the rest
    data = {"pred": MetaTensor(flat), "input": image}
    for step in pipeline:
        data = step(data)
    assert data["qc"].status == "warn" and data["qc"].measures["rim_entropy"] > 0.9
    assert any(reason.startswith("uncertain rim") for reason in data["qc"].reasons)
