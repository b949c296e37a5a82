"""Parametric anatomy of the abdominal CT phantom, in the patient frame (RAS mm).

:class:`AbdomenAnatomy` draws one patient's anatomy from a random generator and paints it onto
a :class:`~monai_attn.synthetic.shapes.Canvas` of any voxel grid. The frame: +x toward the
patient's right, +y anterior, +z superior; z = ``z_t12_l1`` at the T12-L1 disc. Modelled from
the upper thorax to the pelvic inlet:

* body wall: skin, subcutaneous fat (5-55 mm: thin to obese), muscle, linea alba, visceral
  fat; lung bases above a domed diaphragm with posterior recesses; heart, mediastinum; arms
  beside the body in about a third of patients (otherwise raised out of the field); the
  patient table (carbon-fibre shell, foam core) under the back;
* skeleton: vertebral bodies (cortical shell 600-900 HU, cancellous 140-280 HU), discs, neural
  arches, spinous and transverse processes, spinal canal; ribs 6-12 with costal cartilage;
  iliac wings; paraspinal, psoas and quadratus lumborum muscles;
* organs: liver with gallbladder and portal branches; spleen (label 1: a crescent, 120-300 mL,
  against the posterolateral wall under the left dome, its concave hilum facing the body axis,
  intrasplenic vessels labelled spleen, mottled in the arterial phase); kidneys (label 2:
  cortex, medulla, pelvis; sinus fat unlabelled; hilum facing anteromedially, upper poles
  medial and posterior); adrenals; pancreas (label 3, lobulated, fat clefts), head in the
  duodenal C-loop, body anterior to the SMA/aorta, tail at the splenic hilum;
* gut: stomach (fasting fluid or a meal), duodenum, colon with stool, small-bowel loops (with
  positive oral contrast in about a third of patients); walls, gas above an air-fluid level
  (the patient is supine, gas rises anteriorly);
* vessels: aorta, iliac arteries, celiac trunk, splenic and hepatic arteries, SMA, renal
  arteries; IVC, iliac, renal and hepatic veins; SMV, splenic and portal veins. Vessels are painted
  last, so they carve the organs they touch (unlabelled), as the splenic vein grooves the pancreas.

Tissue HU come from one contrast phase per patient (non-contrast, arterial/corticomedullary,
portal venous/nephrographic, delayed) with published ranges (:mod:`monai_attn.synthetic.contrast`):
in a non-contrast phantom the kidneys are as grey as muscle and only their shape tells them apart.
Sizes, positions, angles and shape modulations are jittered per case. The pancreas is meant to
be hard: its HU is close to the duodenum, bowel wall and unopacified loops, and its outline is
lobulated and indented by vessels and duodenum.
"""

from __future__ import annotations

import numpy as np

from monai_attn.synthetic.contrast import draw_phase, draw_tissue_hu
from monai_attn.synthetic.sampling import Patch
from monai_attn.synthetic.shapes import Bumps, Canvas, Ellipsoid, SmoothNoise, Tube, rotation, sub_view

SPLEEN, KIDNEY, PANCREAS = 1, 2, 3

#: z extent (mm, relative to the T12-L1 disc) of the modelled skeleton and vessels.
Z_EXTENT_MM = (-380.0, 400.0)


class AbdomenAnatomy:
    """One random patient; ``paint(canvas)`` renders it onto a patch of any voxel grid."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        u = rng.uniform
        # body outline: inner surface of the abdominal wall (lateral, anterior, posterior half-axes)
        self.cavity = np.array([u(118, 145), u(82, 105), u(72, 88)])
        self.fat_mm = u(5, 55)  # thin to obese
        self.fat_shape = u(-0.3, 0.4, size=2)  # anterior and lateral excess of subcutaneous fat
        self.muscle_mm = u(9, 14)
        self.outline_power = (u(2.0, 2.6), u(2.6, 3.4))  # superellipse exponents anterior, posterior
        self.outline_taper = u(-0.04, 0.04), u(0.0, 0.08), u(-0.04, 0.04)
        self.outline_modes = u(-0.03, 0.03, size=4)
        # spine
        self.z_t12_l1 = u(-10, 10)
        self.lumbar_height = u(33, 38)
        self.thoracic_height = u(24, 28)
        self.y_spine = -self.cavity[2] + u(38, 48)
        self.lordosis_mm = u(6, 16)
        self.scoliosis_mm = u(-6, 6)
        self.bone_hu = (u(600, 900), u(140, 280))  # cortical, cancellous
        self.aorta_r = u(9, 12.5)
        self.aorta_y = self.y_spine + 16 + self.aorta_r + u(1, 4)
        self.y_sma = self.aorta_y + self.aorta_r + u(9, 14)
        # tissue HU of this patient's contrast phase (non-contrast .. delayed), see synthetic.contrast
        self.phase = draw_phase(rng)
        self.hu = draw_tissue_hu(rng, self.phase)
        # texture amplitudes (HU): mottled ("arciform") spleen in the arterial phase
        self.texture_hu = {"liver": u(3, 8), "spleen": u(15, 30) if self.phase == "arterial" else u(3, 8),
                           "pancreas": u(4, 9)}
        self.oral_contrast_hu = u(150, 450) if u(0, 1) < 0.3 else None  # positive oral contrast in the bowel
        self.arms = u(0, 1) < 0.35  # arms down beside the body instead of above the head
        back_mm = self.cavity[2] + self.muscle_mm + 34.0 + self.fat_mm * (1 - self.fat_shape[0])
        self.table_y = -back_mm - u(2, 12)  # top of the patient table, under the back
        self._build_spine_levels()
        self._build_organs()
        self._build_gut()
        self._build_vessels()
        self._build_muscles_and_bones()
        self._build_textures()

    # ------------------------------------------------------------------------------------------
    # geometry
    # ------------------------------------------------------------------------------------------
    def spine_center(self, z: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) mm of the vertebral-body centre at height z: lumbar lordosis, mild scoliosis."""
        z = np.asarray(z, dtype=np.float32)
        z_l3 = np.float32(self.z_t12_l1 - 2.5 * self.lumbar_height)
        x = np.float32(self.scoliosis_mm) * np.sin((z - np.float32(self.z_t12_l1)) / np.float32(250.0 / np.pi))
        y = np.float32(self.y_spine) + np.float32(self.lordosis_mm) * np.exp(-(((z - z_l3) / np.float32(110.0)) ** 2))
        return x, y

    def outline(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
        """Body-wall geometry along the ray from the body axis through each voxel (mm).

        Keys: ``s``/``c`` (sine/cosine of the ray angle; s = -1 posterior, +1 anterior, c > 0
        toward the patient's right), ``depth`` (below the skin; > 0 inside the body),
        ``cavity_depth`` (inside the inner muscle surface; > 0 in the abdominal cavity), ``fat``
        (subcutaneous fat thickness along the ray). The cross-section is a superellipse with
        a few angular modes, scaled along z; on axis-aligned grids the angular part stays 2-D.
        """
        r = np.sqrt(x * x + y * y) + np.float32(1e-3)
        c, s = x / r, y / r
        posterior = s < 0
        b = np.where(posterior, np.float32(self.cavity[2]), np.float32(self.cavity[1]))
        p = np.where(posterior, np.float32(self.outline_power[1]), np.float32(self.outline_power[0]))
        cavity = (np.abs(c / np.float32(self.cavity[0])) ** p + np.abs(s / b) ** p) ** (-1 / p)
        m = self.outline_modes.astype(np.float32)
        cavity = cavity * (1 + m[0] * (c * c - s * s) + m[1] * 2 * c * s + m[2] * c * (4 * c * c - 3)
                           + m[3] * s * (3 - 4 * s * s))
        zn = (z - np.float32(self.z_t12_l1)) / np.float32(200.0)
        t = self.outline_taper
        cavity = cavity * (1 + np.float32(t[0]) * zn + np.float32(t[1]) * zn * zn + np.float32(t[2]) * zn * s)
        fat = np.float32(self.fat_mm) * (1 + np.float32(self.fat_shape[0]) * s + np.float32(self.fat_shape[1]) * c * c)
        muscle = np.float32(self.muscle_mm) + np.float32(34.0) * np.clip(-s, 0, 1) ** 6  # paraspinal mass
        return {"s": s, "c": c, "fat": fat, "cavity_depth": cavity - r, "depth": cavity + muscle + fat - r}

    def diaphragm_z(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Height (mm) of the diaphragm: right dome higher, a rounded saddle at the midline, posterior
        recesses."""
        a, b = np.float32(self.cavity[0]), np.float32(self.cavity[2])
        domes = []
        for side, top in ((1, self.dome_z[0]), (-1, self.dome_z[1])):
            lateral = (x - np.float32(side * 0.42) * a) / (np.float32(0.62) * a)
            domes.append(np.float32(top) - np.float32(48.0) * lateral * lateral)
        posterior = np.clip(-(y - np.float32(self.y_spine + 30)) / b, 0, None)
        saddle = np.float32(8.0) * np.logaddexp(domes[0] / np.float32(8.0), domes[1] / np.float32(8.0))
        return saddle - np.float32(self.recess_mm) * posterior * posterior

    def _clip_to_cavity(self, patch: Patch, mask: np.ndarray, margin_mm: float) -> np.ndarray:
        """``mask`` restricted to the abdominal cavity (``margin_mm`` inside the wall) below the diaphragm."""
        x, y, z = patch.coords()
        return mask & (self.outline(x, y, z)["cavity_depth"] > margin_mm) & (z < self.diaphragm_z(x, y) - 4)

    # ------------------------------------------------------------------------------------------
    # building the anatomy
    # ------------------------------------------------------------------------------------------
    def _build_spine_levels(self) -> None:
        """Vertebrae T1..S1 as arrays sorted by z: bottom, top, half-width, half-depth, disc, lumbar."""
        u = self.rng.uniform
        levels = []
        z = self.z_t12_l1
        for _ in range(5):  # L1..L5
            levels.append((z - self.lumbar_height, z, u(20, 24), u(15, 17.5), u(9, 11), 1.0))
            z -= self.lumbar_height
        levels.append((z - 1.3 * self.lumbar_height, z, u(23, 27), u(15, 17), 0.0, 1.0))  # S1
        z, height = self.z_t12_l1, self.thoracic_height
        thoracic = []
        for _ in range(12):  # T12..T1
            thoracic.append((z, z + height, u(16, 19), u(13, 15), u(5, 6.5), 0.0))
            z += height
            height *= 0.97
        table = np.array(sorted(levels + thoracic), dtype=np.float32)
        self.levels = table
        # ribs 12..6 start posteriorly at the centre of vertebrae T12..T6 (thoracic[0] is T12)
        self.ribs = []
        for number, (bottom, top, *_rest) in zip(range(12, 5, -1), thoracic):
            for side in (1, -1):
                self.ribs.append((number, side, 0.5 * (bottom + top) + u(-3, 3), u(5, 7)))
        self.dome_z = (self.z_t12_l1 + u(85, 110), self.z_t12_l1 + u(70, 95))  # right, left
        self.recess_mm = u(70, 95)

    def _jitter(self, point, scale) -> np.ndarray:
        return np.asarray(point, dtype=np.float64) + self.rng.normal(0, 1, 3) * np.asarray(scale)

    def _build_organs(self) -> None:
        u, rng = self.rng.uniform, self.rng
        a, b_ant, b_post = self.cavity
        z0 = self.z_t12_l1
        xs, ys = (float(v) for v in self.spine_center(z0))
        self.liver = [  # right lobe, left lobe, caudate lobe
            Ellipsoid((0.42 * a, 0.05 * b_ant + u(-8, 8), z0 + u(35, 50)),
                      (0.62 * a * u(0.9, 1.1), 0.95 * b_post * u(0.9, 1.1), u(75, 95)),
                      rotation(u(-10, 10), u(-15, 5), u(-10, 10)), Bumps(rng, 5, 0.12)),
            Ellipsoid((-0.12 * a, 0.45 * b_ant, z0 + u(65, 80)), (0.45 * a * u(0.8, 1.2), 0.38 * b_ant, u(35, 50)),
                      rotation(0, u(-10, 10), u(-20, 0)), Bumps(rng, 4, 0.12)),
            Ellipsoid((xs + 12, ys + 42, z0 + u(45, 60)), (22, 20, u(30, 40)), None, Bumps(rng, 3, 0.1)),
        ]
        self.gallbladder = Ellipsoid((0.3 * a, 0.55 * b_ant, z0 + u(0, 20)), (u(14, 20), u(14, 20), u(35, 50)),
                                     rotation(u(-30, 10), 0, u(-20, 20)), Bumps(rng, 3, 0.08))
        # spleen: posterolateral left against the wall, long axis along the ribs, a crescent whose
        # concave hilum faces the body axis (from a shallow notch to a deep crescent around the
        # stomach); its lower pole from the upper pole to the hilum of the left kidney
        angle = np.deg2rad(u(-150, -135))
        radii = np.array([u(55, 72), u(20, 30), u(36, 50)])
        reach = u(0.72, 0.8)
        xy = np.array([reach * a * np.cos(angle), reach * b_post * np.sin(angle)])
        under_dome = float(self.diaphragm_z(np.float32(xy[0]), np.float32(xy[1])))  # its top just under the dome
        center = np.array([*xy, under_dome - 0.8 * radii[2] - u(0, 25)])
        axes = rotation(u(-20, 20), u(-25, -5), np.rad2deg(angle) + 90 + u(-15, 15))
        self.spleen = Ellipsoid(center, radii, axes, Bumps(rng, 5, 0.1))
        concavity = radii * np.array([u(0.7, 0.95), 0.7, u(0.7, 0.95)])
        self.spleen_hilum = Ellipsoid(center + axes @ np.array([0, u(0.95, 1.3) * radii[1], 0]), concavity, axes)
        self.splenic_hilum_point = center + axes @ np.array([0, 0.95 * radii[1], -0.1 * radii[2]])
        # kidneys: local axes u = long (superior), v = toward the hilum (medial), w = u x v
        self.kidneys = []
        for side, dz in ((1, u(-45, -25)), (-1, u(-36, -16))):
            base = np.column_stack([(0, 0, 1), (-side, 0, 0), np.cross((0, 0, 1), (-side, 0, 0))]).astype(float)
            # hilum turned anteriorly (about z), upper pole medial (about y) and posterior (about x)
            axes = rotation(u(8, 20), -side * u(8, 18), -side * u(25, 40)) @ base
            center = np.array([xs + side * (u(56, 66) + 0.1 * (a - 130)), ys + u(0, 10), z0 + dz])
            radii = np.array([u(52, 62), u(28, 33), u(21, 25)])
            self.kidneys.append((Ellipsoid(center, radii, axes, Bumps(rng, 4, 0.05)), u(5, 8)))
        # pancreas: uncinate -> head (right, in the C-loop) -> neck (over the SMV) -> body (over the SMA) -> tail
        head = np.array([xs + u(28, 38), self.y_sma + u(2, 10), z0 - u(45, 60)])
        neck = np.array([xs + u(2, 10), self.y_sma + u(14, 20), z0 - u(15, 25)])
        body = np.array([xs - u(22, 32), self.y_sma + u(8, 16), z0 - u(5, 15)])
        inward = self.spleen.axes[:, 1]
        tail = self.splenic_hilum_point + inward * u(12, 18) + (0, 0, -u(2, 8))
        self.pancreas_path = np.array([
            head + (u(-6, 2), u(-14, -8), -u(22, 30)),  # uncinate process, behind the SMV
            head,
            head + (u(-6, 0), u(2, 8), u(15, 22)),
            neck,
            body,
            0.5 * (body + tail) + (0, -u(2, 8), u(0, 6)),
            tail,
        ])
        radii = [u(8, 11), u(13, 16), u(12, 15), u(9, 12), u(9, 12), u(9, 12), u(8, 11)]
        self.pancreas = Tube(self.pancreas_path, radii, step_mm=3.0)
        self.pancreas_lobulation_mm = u(2.0, 4.0)
        self.pancreas_fat = u(0.0, 0.15)  # fatty infiltration between lobules

    def _build_gut(self) -> None:
        u, rng = self.rng.uniform, self.rng
        a, b_ant, b_post = self.cavity
        z0 = self.z_t12_l1
        xs, ys = (float(v) for v in self.spine_center(z0))
        head = self.pancreas_path[1]
        # stomach: fundus (left, posterior, under the dome) -> body (anterior-left) -> antrum -> pylorus
        fundus = np.array([-0.45 * a, ys + u(35, 50), self.dome_z[1] - u(25, 35)])
        pylorus = np.array([xs + u(15, 30), head[1] + u(35, 45), head[2] + u(55, 70)])
        path = [fundus, fundus + (u(-10, 5), u(25, 35), -u(35, 50)), (-0.35 * a, 0.55 * b_ant, z0 - u(0, 15)),
                (-0.05 * a, 0.65 * b_ant, z0 - u(10, 25)), pylorus]
        food = u(-20, 60) if u(0, 1) < 0.4 else self.hu["fluid"]  # fasting fluid or a recent meal
        self.stomach = (Tube(path, [u(32, 42), u(30, 40), u(25, 32), u(16, 22), 10]), u(4, 6), u(-25, 25), food)
        # duodenum: bulb -> descending (lateral to the head) -> horizontal (between SMA and aorta) -> ascending
        descending_x = head[0] + u(22, 28)
        path = [pylorus, pylorus + (u(12, 18), u(-18, -12), u(0, 5)),
                (descending_x, head[1] - u(0, 8), head[2] + u(20, 30)),
                (descending_x + u(-2, 4), head[1] - u(4, 10), head[2] - u(10, 20)),
                (descending_x - u(8, 14), head[1] - u(6, 12), head[2] - u(40, 50)),
                (xs + u(0, 8), self.aorta_y + u(14, 20), head[2] - u(45, 55)),
                (xs - u(22, 30), self.aorta_y + u(14, 22), head[2] - u(30, 40)),
                (xs - u(30, 40), self.aorta_y + u(25, 35), head[2] - u(15, 25))]
        self.duodenum = (Tube(path, u(10, 14)), u(2.5, 3.5), u(-15, 20), self.hu["fluid"])
        # colon: cecum -> ascending -> hepatic flexure -> transverse (sagging) -> splenic flexure -> descending
        lat = 0.72 * a
        path = [(lat * 0.9, 0.25 * b_ant, z0 - u(170, 200)), (lat, 0.0, z0 - u(110, 130)),
                (lat, -0.05 * b_ant, z0 - u(50, 70)), (lat * 0.85, 0.3 * b_ant, z0 - u(20, 40)),
                (0.3 * a, 0.75 * b_ant, z0 - u(40, 80)), (-0.2 * a, 0.75 * b_ant, z0 - u(30, 70)),
                (-0.6 * a, 0.45 * b_ant, z0 + u(0, 25)), (-lat * 1.02, 0.1 * b_ant, z0 + u(5, 25)),
                (-lat * 1.05, -0.25 * b_post, z0 - u(40, 60)), (-lat, -0.15 * b_post, z0 - u(120, 140)),
                (-0.4 * a, 0.2 * b_ant, z0 - u(185, 210)), (0.0, 0.1 * b_ant, z0 - u(220, 240))]
        self.colon = (Tube([self._jitter(p, 5.0) for p in path], u(18, 26)), u(2, 3.5), u(-30, 10), self.hu["stool"])
        # small bowel: smooth random walks in the lower abdomen; some loops hold gas
        self.small_bowel = []
        for _ in range(int(rng.integers(12, 20))):
            points = [np.array([u(-0.55, 0.55) * a, u(-0.1, 0.7) * b_ant, z0 - u(60, 240)])]
            heading = rng.normal(size=3)
            for _ in range(int(rng.integers(6, 10))):
                heading = heading / np.linalg.norm(heading) + rng.normal(0, 0.9, 3)
                step = points[-1] + 25 * heading / np.linalg.norm(heading)
                points.append(np.clip(step, (-0.6 * a, -0.1 * b_ant, z0 - 260), (0.6 * a, 0.8 * b_ant, z0 - 55)))
            level = u(-12, 30) if u(0, 1) < 0.35 else np.inf
            content = u(0, 40)
            if self.oral_contrast_hu is not None and u(0, 1) < 0.6:
                content = self.oral_contrast_hu * u(0.5, 1.0)
            self.small_bowel.append((Tube(points, u(9, 15)), u(1.5, 3.0), level, content))

    def _build_vessels(self) -> None:
        u = self.rng.uniform
        a = self.cavity[0]
        z0 = self.z_t12_l1
        z_bif = z0 - 3.6 * self.lumbar_height - u(0, 15)
        zs = np.linspace(z0 + Z_EXTENT_MM[1], z_bif, 14)
        xs, ys = self.spine_center(zs)
        aorta = np.stack([xs - u(12, 18), ys + (self.aorta_y - self.y_spine), zs], axis=1)
        thoracic = zs > self.dome_z[1] - 20
        aorta[thoracic, 0] -= 14  # the descending thoracic aorta lies left of the spine
        aorta[thoracic, 1] -= 16 + self.aorta_r - 2
        bif = aorta[-1]
        xl, yl = (float(v) for v in self.spine_center(bif[2] - 80))
        iliac_a = [Tube([bif, bif + (side * u(18, 25), u(-8, 0), -40), (xl + side * u(45, 60), yl + 10, bif[2] - 90)],
                        u(5, 7)) for side in (1, -1)]
        zs_ivc = np.linspace(self.dome_z[0] - 10, z_bif - 25, 10)
        xv, yv = self.spine_center(zs_ivc)
        ivc_r = u(9, 12)
        ivc = np.stack([xv + u(18, 26), yv + 16 + ivc_r + u(0, 6), zs_ivc], axis=1)
        ivc[0, 1] += 15  # bends anteriorly into the liver
        iliac_v = [Tube([ivc[-1], ivc[-1] + (side * u(15, 25), -5, -30), (xl + side * u(35, 50), yl + 2, bif[2] - 100)],
                        u(6, 8)) for side in (1, -1)]

        def at(path: np.ndarray, z: float) -> np.ndarray:
            return np.array([np.interp(z, path[::-1, 2], path[::-1, i]) for i in range(3)])

        sma_origin = at(aorta, z0 - u(0, 10))
        sma = [sma_origin, sma_origin + (0, u(12, 18), -5),
               (sma_origin[0] + u(0, 6), self.y_sma, sma_origin[2] - u(25, 35)),
               (sma_origin[0] + u(5, 15), self.y_sma + u(5, 15), sma_origin[2] - u(90, 120))]
        celiac_origin = at(aorta, z0 + u(10, 20))
        celiac_end = celiac_origin + (u(-4, 4), u(14, 20), u(2, 6))
        hilum = self.splenic_hilum_point
        splenic_a = [celiac_end, celiac_end + (-u(15, 25), u(0, 8), u(5, 15)),
                     0.5 * (celiac_end + hilum) + (0, u(-5, 5), u(10, 20)), hilum + (8, 6, 6)]
        porta = np.array([0.28 * a, self.y_spine + u(60, 75), z0 + u(25, 40)])
        hepatic_a = [celiac_end, celiac_end + (u(15, 25), u(0, 6), u(0, 6)), porta + (-5, 8, 0)]
        neck = self.pancreas_path[3]
        confluence = neck + (u(-4, 2), -u(10, 14), u(0, 8))
        smv = [confluence, confluence + (u(2, 8), u(-2, 4), -u(30, 40)), confluence + (u(5, 12), u(0, 8), -u(90, 110))]
        portal = [confluence, 0.5 * (confluence + porta) + (0, u(-4, 4), 0), porta,
                  porta + (u(30, 45), u(-5, 5), u(5, 15))]
        body, mid, tail = self.pancreas_path[4:7]
        splenic_v = [confluence, body + (0, -u(9, 12), u(-2, 4)), mid + (0, -u(9, 12), 0), tail + (0, -u(8, 11), 0),
                     hilum + (6, 4, 2)]
        self.arteries = [Tube(aorta, self.aorta_r, step_mm=8.0), *iliac_a, Tube(sma, u(3, 4.5)),
                         Tube([celiac_origin, celiac_end], u(3, 4.5)), Tube(splenic_a, u(2.5, 3.5)),
                         Tube(hepatic_a, u(2.2, 3.2))]
        self.veins = [Tube(ivc, ivc_r), *iliac_v]
        self.portal_veins = [Tube(smv, u(5, 7)), Tube(portal, u(6.5, 8.5)), Tube(splenic_v, u(3.5, 5))]
        # intrahepatic portal branches fan out from the porta hepatis into the right and left lobes
        for lobe in self.liver[:2]:
            for _ in range(int(self.rng.integers(2, 4))):
                end = lobe.center + lobe.axes @ (lobe.radii * self.rng.uniform(-0.6, 0.6, 3))
                middle = 0.5 * (porta + end) + self.rng.normal(0, 6, 3)
                self.portal_veins.append(Tube([porta, middle, end], (u(4, 6), u(2.5, 4), 1.2)))
        # splenic artery and vein branches entering at the hilum (painted as part of the spleen)
        spleen = self.spleen
        self.splenic_branches = []
        for sign_long in (-1, 1):
            for sign_z in (-1, 1):
                end = spleen.center + spleen.axes @ (spleen.radii * (sign_long * u(0.35, 0.7), -u(0.1, 0.4),
                                                                     sign_z * u(0.2, 0.5)))
                self.splenic_branches.append(Tube([hilum, end], (u(2.5, 3.5), 1.0)))
        for kidney, _ in self.kidneys:
            hilum_point = kidney.center + kidney.axes @ np.array([0, 1.05 * kidney.radii[1], 0])
            self.arteries.append(Tube([at(aorta, z0 - u(5, 20)), hilum_point + (0, -4, 0)], u(2.5, 3.5)))
            # the left renal vein crosses between the aorta and the SMA to reach the IVC
            ivc_point = at(ivc, hilum_point[2] + 5)
            path = [hilum_point + (0, 4, 0), ivc_point] if hilum_point[0] > 0 else \
                [hilum_point + (0, 4, 0), (float(at(aorta, hilum_point[2])[0]), self.y_sma - 6, ivc_point[2]),
                 ivc_point]
            self.veins.append(Tube(path, u(4, 6)))
        for direction in ((1.0, -0.2), (0.6, 0.6), (-0.2, 0.9)):  # hepatic veins converge on the IVC
            end = ivc[0] + (direction[0] * u(50, 70), direction[1] * u(40, 60), -u(10, 30))
            self.veins.append(Tube([ivc[0], end], (u(5, 7), 2.0)))
        # jejunal and ileal branches of the SMA / SMV run through the mesentery to the loops
        for _ in range(int(self.rng.integers(6, 12))):
            loop = self.small_bowel[int(self.rng.integers(len(self.small_bowel)))][0]
            target = loop.points[int(self.rng.integers(len(loop.points)))]
            if u(0, 1) < 0.5:
                source, radius, group = sma, u(1.2, 2.0), self.arteries
            else:
                source, radius, group = smv, u(1.5, 2.5), self.portal_veins
            start = np.asarray(source[-2]) + (np.asarray(source[-1]) - np.asarray(source[-2])) * u(0, 1)
            middle = 0.5 * (start + target) + self.rng.normal(0, 10, 3)
            group.append(Tube([start, middle, target], (radius, 0.8 * radius, 0.6 * radius)))
        # adrenal glands: thin inverted-V limbs above and medial to the upper poles of the kidneys
        self.adrenals = []
        for kidney, _ in self.kidneys:
            pole = kidney.center + kidney.axes @ np.array([kidney.radii[0] * 0.85, 0.35 * kidney.radii[1], 0])
            apex = pole + (0, u(8, 14), u(18, 28))
            for limb in ((u(-10, -4), u(-12, -6), -u(20, 28)), (u(4, 10), u(-14, -8), -u(18, 24))):
                self.adrenals.append(Tube([apex, apex + np.asarray(limb)], (u(3, 4), u(2, 3))))
        cardia = self.stomach[0].points[0] + (u(15, 25), 0, u(10, 20))
        self.esophagus = Tube([(xs[0] - 12, ys[0] + 30, zs[0]),
                               (cardia[0] + 10, ys[-1] + 40, self.dome_z[1] + 10), cardia],
                              u(6, 9))
        self.heart = Ellipsoid((-u(10, 30), self.y_spine + u(95, 110), self.dome_z[1] + u(40, 60)),
                               (u(60, 75), u(45, 55), u(55, 70)), rotation(0, 0, u(-30, -10)))

    def _build_muscles_and_bones(self) -> None:
        u = self.rng.uniform
        z0 = self.z_t12_l1
        zs = np.linspace(z0 + Z_EXTENT_MM[1], z0 + Z_EXTENT_MM[0], 16)
        xs, ys = self.spine_center(zs)
        self.paraspinals = []
        for side in (1, -1):
            for offset, radius in ((u(16, 22), u(16, 20)), (u(32, 40), u(14, 18))):
                path = np.stack([xs + side * offset, ys - u(52, 60), zs], axis=1)
                self.paraspinals.append(Tube(path, radius, step_mm=12.0))
        zp = np.linspace(z0 + 10, z0 - 240, 8)
        xp, yp = self.spine_center(zp)
        growth = np.clip((z0 + 10 - zp) / 160, 0, 1)
        self.psoas = [Tube(np.stack([xp + side * (26 + 22 * growth), yp + 6 + 18 * growth, zp], axis=1),
                           5 + u(16, 22) * np.sqrt(growth)) for side in (1, -1)]
        zq = np.linspace(z0 + 10, z0 - 150, 5)
        xq, yq = self.spine_center(zq)
        self.quadratus = [Tube(np.stack([xq + side * u(50, 60), yq - u(30, 38), zq], axis=1), u(8, 13))
                          for side in (1, -1)]
        z_iliac = z0 - 4 * self.lumbar_height
        self.iliac_wings = [Ellipsoid((side * u(85, 100), self.y_spine - u(0, 15), z_iliac - u(50, 65)),
                                      (u(6, 9), u(55, 70), u(55, 70)), rotation(0, side * u(5, 15), side * u(35, 50)))
                            for side in (1, -1)]
        # arms down beside the body (used when self.arms) and the patient table
        self.arm_tubes = []
        for side in (1, -1):
            radius = u(38, 55)
            x = side * (self.cavity[0] + self.muscle_mm + self.fat_mm * (1 + self.fat_shape[1]) + radius + u(8, 30))
            y = u(-30, 20)
            self.arm_tubes.append((Tube([(x, y, z0 + 250), (x + side * u(0, 15), y + u(0, 25), z0 - 250)], radius,
                                        step_mm=50.0), u(6, 15), u(10, 14)))
        self.table_half_width = u(200, 240)
        self.table_hu = (u(150, 450), u(-950, -800))  # shell, foam core
        self.bladder = Ellipsoid((0, self.cavity[1] * 0.5, z0 - 5.5 * self.lumbar_height - u(70, 90)),
                                 (u(35, 50), u(30, 40), u(30, 45)), None, Bumps(self.rng, 3, 0.08))

    def _build_textures(self) -> None:
        """Smooth fields fixed in the anatomy frame, so chunks and sub-slices of a case agree."""
        rng = self.rng
        liver_lo = np.min([e.lo for e in self.liver], axis=0)
        liver_hi = np.max([e.hi for e in self.liver], axis=0)
        margin = 3 * self.pancreas_lobulation_mm
        self.textures = {
            "liver": SmoothNoise(rng, liver_lo, liver_hi, 8.0),
            "spleen": SmoothNoise(rng, self.spleen.lo, self.spleen.hi, 10.0),
            "kidney": [SmoothNoise(rng, k.lo, k.hi, 7.0) for k, _ in self.kidneys],
            "lobules": SmoothNoise(rng, self.pancreas.lo - margin, self.pancreas.hi + margin, 6.0),
            "pancreas": SmoothNoise(rng, self.pancreas.lo - margin, self.pancreas.hi + margin, 3.0),
            "stool": SmoothNoise(rng, self.colon[0].lo, self.colon[0].hi, 4.0),
        }

    # ------------------------------------------------------------------------------------------
    # painting, back to front
    # ------------------------------------------------------------------------------------------
    def paint(self, canvas: Canvas) -> None:
        """Render the anatomy onto ``canvas``; later structures overwrite earlier ones."""
        root = canvas.root
        wall = self._paint_body(canvas, root)
        for loop in self.small_bowel:
            self._paint_hollow(canvas, root, loop)
        self._paint_hollow(canvas, root, self.colon, stool=True)
        self._paint_hollow(canvas, root, self.stomach)
        self._paint_solid(canvas, root, self.esophagus, self.hu["muscle"])
        self._paint_liver(canvas, root)
        self._paint_spleen(canvas, root)
        self._paint_kidneys(canvas, root)
        self._paint_pancreas(canvas, root)
        self._paint_hollow(canvas, root, self.duodenum)
        for tube in self.adrenals:
            self._paint_solid(canvas, root, tube, self.hu["adrenal"])
        for tube in (*self.paraspinals, *self.psoas, *self.quadratus):
            self._paint_solid(canvas, root, tube, self.hu["muscle"])
        self._paint_ribs(canvas, root, wall)
        self._paint_pelvis(canvas, root)
        self._paint_spine(canvas, root)
        for tube in self.arteries:
            self._paint_solid(canvas, root, tube, self.hu["artery"])
        for tube in self.veins:
            self._paint_solid(canvas, root, tube, self.hu["vein"])
        for tube in self.portal_veins:
            self._paint_solid(canvas, root, tube, self.hu["portal"])

    def _paint_body(self, canvas: Canvas, root: Patch) -> dict[str, np.ndarray]:
        """Skin, fat, muscle, visceral fat, lungs, diaphragm, mediastinum and heart."""
        x, y, z = root.coords()
        wall = self.outline(x, y, z)
        depth, cavity = wall["depth"], wall["cavity_depth"]
        hu = self.hu
        self._paint_table(canvas, root, x, y)
        if self.arms:
            for arm in self.arm_tubes:
                self._paint_arm(canvas, root, arm)
        canvas.fill(root, depth > 0, hu["skin"])
        canvas.fill(root, depth > 2.0, hu["fat"])
        canvas.fill(root, depth > wall["fat"], hu["muscle"])
        canvas.fill(root, (cavity < 0) & (np.abs(x) < 4.0) & (wall["s"] > 0.8) & (depth > wall["fat"]), hu["fat"])
        interior = cavity > 0
        canvas.fill(root, interior, hu["visceral_fat"])
        z_d = self.diaphragm_z(x, y)
        mx, my = (x + np.float32(12.0)) / np.float32(50.0), (y - np.float32(self.y_spine + 75)) / np.float32(70.0)
        mediastinum = mx * mx + my * my < 1
        above = interior & (z > z_d)
        canvas.fill(root, above & ~mediastinum, hu["lung"])
        canvas.fill(root, interior & (z <= z_d) & (z > z_d - 4), hu["muscle"])
        heart = root.window(self.heart.lo, self.heart.hi)
        if heart is not None:
            hx, hy, hz = heart.coords()
            canvas.fill(heart, self.heart.inside(heart) & (hz > self.diaphragm_z(hx, hy) + 4), hu["heart"])
        return wall

    def _paint_table(self, canvas: Canvas, root: Patch, x: np.ndarray, y: np.ndarray) -> None:
        """Patient table: a gently curved carbon-fibre shell (thin bright skins, foam core) under the back."""
        top = np.float32(self.table_y) + np.float32(4e-4) * x * x
        below = top - y  # mm under the table's top surface
        across = np.abs(x) < np.float32(self.table_half_width)
        canvas.fill(root, across & (below > 0) & (below < 40), self.table_hu[1])
        canvas.fill(root, across & (((below > 0) & (below < 2.5)) | ((below > 37.5) & (below < 40))), self.table_hu[0])

    def _paint_arm(self, canvas: Canvas, root: Patch, arm: tuple[Tube, float, float]) -> None:
        """An arm beside the body: skin and fat, muscle, humerus (cortex and marrow)."""
        tube, fat_mm, bone_mm = arm
        patch = root.window(tube.lo, tube.hi)
        if patch is None:
            return
        depth, _ = tube.evaluate(patch)
        radius = np.float32(tube.radii.max())
        canvas.fill(patch, depth > 0, self.hu["fat"])
        canvas.fill(patch, depth > fat_mm, self.hu["muscle"])
        canvas.fill(patch, depth > radius - bone_mm, self.bone_hu[0])
        canvas.fill(patch, depth > radius - 0.6 * bone_mm, self.bone_hu[1])

    def _paint_ribs(self, canvas: Canvas, root: Patch, wall: dict[str, np.ndarray]) -> None:
        """Ribs 6-12 (from their vertebra, sloping down anteriorly) and costal cartilage.

        Evaluated only on the thin shell just outside the cavity where ribs can lie.
        """
        z = root.coords()[2]
        ring = np.broadcast_to(wall["cavity_depth"], root.shape) + np.float32(2.0)
        shell = np.abs(ring) < 4.5
        if not shell.any():
            return
        index = np.nonzero(shell)
        zz = np.broadcast_to(z, root.shape)[index]
        ss = np.broadcast_to(wall["s"], root.shape)[index]
        cc = np.broadcast_to(wall["c"], root.shape)[index]
        radial = (ring[index] / np.float32(4.5)) ** 2
        along = np.clip((ss + 0.93) / 1.93, 0, 1)
        tissue = np.zeros(zz.shape, dtype=np.uint8)  # 1 cartilage, 2 cortex, 3 marrow
        for number, side, z_post, half_height in self.ribs:
            end = {12: -0.35, 11: 0.05, 10: 0.55}.get(number, 0.95)
            z_rib = z_post - (45 + 8 * (12 - number)) * along
            e = radial + ((zz - z_rib) / np.float32(half_height)) ** 2
            sel = (e < 1) & (ss > -0.93) & (ss < end) & (cc * side > -0.15)
            tissue[sel] = np.where(ss[sel] > 0.5, 1, np.where(e[sel] > 0.35, 2, 3))
        values = np.array([0, self.hu["cartilage"], self.bone_hu[0], self.bone_hu[1] + 50], dtype=np.float32)
        chosen = tissue > 0
        target = tuple(i[chosen] for i in index)
        canvas.hu[root.slices][target] = values[tissue[chosen]]
        canvas.label[root.slices][target] = 0

    def _paint_liver(self, canvas: Canvas, root: Patch) -> None:
        texture = self.textures["liver"]
        patch = root.window(texture.lo, texture.hi)
        if patch is None:
            return
        mask = np.zeros(patch.shape, dtype=bool)
        for lobe in self.liver:
            sub = patch.window(lobe.lo, lobe.hi)
            if sub is not None:
                sub_view(mask, patch, sub)[...] |= lobe.inside(sub)
        mask = self._clip_to_cavity(patch, mask, 2.0)
        canvas.fill(patch, mask, self.hu["liver"] + self.texture_hu["liver"] * texture.on(patch, mask))
        sub = patch.window(self.gallbladder.lo, self.gallbladder.hi)
        if sub is not None:
            canvas.fill(sub, self.gallbladder.inside(sub) & sub_view(mask, patch, sub), self.hu["bile"])

    def _paint_spleen(self, canvas: Canvas, root: Patch) -> None:
        patch = root.window(self.spleen.lo, self.spleen.hi)
        if patch is None:
            return
        mask = self._clip_to_cavity(patch, self.spleen.inside(patch) & ~self.spleen_hilum.inside(patch), 3.0)
        texture = self.texture_hu["spleen"] * self.textures["spleen"].on(patch, mask)
        canvas.fill(patch, mask, self.hu["spleen"] + texture, SPLEEN)
        for tube in self.splenic_branches:  # intrasplenic vessels belong to the organ
            depth, _ = tube.evaluate(patch)
            canvas.fill(patch, mask & (depth > 0), self.hu["portal"], SPLEEN)

    def _paint_kidneys(self, canvas: Canvas, root: Patch) -> None:
        """Cortex, medullary pyramids, pelvis (label 2); sinus fat and hilum notch (label 0)."""
        for (kidney, cortex_mm), pyramids in zip(self.kidneys, self.textures["kidney"]):
            patch = root.window(kidney.lo, kidney.hi)
            if patch is None:
                continue
            u, v, w = kidney.local(patch)
            q = kidney.radius(patch)
            body = q < 1
            sinus = (u * u / 0.3 + (v - 0.45) ** 2 / 0.12 + w * w / 0.15) < 1
            notch = (np.abs(u) < 0.3) & (v > 0.6) & (np.abs(w) < 0.35)
            pelvis = (u * u / 0.08 + (v - 0.6) ** 2 / 0.06 + w * w / 0.06) < 1
            canvas.fill(patch, body & ~notch, self.hu["cortex"], KIDNEY)
            medulla = body & (q < 1 - cortex_mm / kidney.radii[1]) & ~sinus
            pyramid = pyramids.on(patch, medulla) > -0.4
            canvas.fill(patch, medulla, np.where(pyramid, self.hu["medulla"], self.hu["cortex"]), KIDNEY)
            canvas.fill(patch, body & sinus & ~pelvis, self.hu["visceral_fat"] + 30)
            canvas.fill(patch, (body | notch) & sinus & pelvis, self.hu["urine"], KIDNEY)
            canvas.fill(patch, notch & ~pelvis & (q < 1.1), self.hu["visceral_fat"])

    def _paint_pancreas(self, canvas: Canvas, root: Patch) -> None:
        """Lobulated gland: tube depth perturbed by a smooth field, fat clefts between lobules."""
        lobules, texture = self.textures["lobules"], self.textures["pancreas"]
        patch = root.window(lobules.lo, lobules.hi)
        if patch is None:
            return
        depth, _ = self.pancreas.evaluate(patch)
        near = depth > -2.5 * self.pancreas_lobulation_mm
        depth[near] += self.pancreas_lobulation_mm * lobules.on(patch, near)
        gland = near & (depth > 0)
        values = self.hu["pancreas"] + self.texture_hu["pancreas"] * texture.on(patch, gland)
        clefts = lobules.on(patch, gland) < -1.8 + 3.0 * self.pancreas_fat
        canvas.fill(patch, gland, np.where(clefts, self.hu["visceral_fat"] + 40, values), PANCREAS)

    def _paint_solid(self, canvas: Canvas, root: Patch, tube: Tube, hu: float) -> None:
        patch = root.window(tube.lo, tube.hi)
        if patch is not None:
            canvas.fill(patch, tube.evaluate(patch)[0] > 0, hu)

    def _paint_hollow(self, canvas: Canvas, root: Patch, spec: tuple[Tube, float, float, float],
                      stool: bool = False) -> None:
        """Hollow viscus ``(tube, wall_mm, level_mm, content_hu)``: wall, content (or mottled stool
        with gas bubbles), gas above the level (height over the centre line)."""
        tube, wall_mm, level_mm, content_hu = spec
        patch = root.window(tube.lo, tube.hi)
        if patch is None:
            return
        depth, height = tube.evaluate(patch)
        canvas.fill(patch, depth > 0, self.hu["bowel_wall"])
        lumen = depth > wall_mm
        gas = lumen & (height > level_mm)
        content = lumen & ~gas
        if stool:
            bubbles = self.textures["stool"].on(patch, content) > 0.6
            canvas.fill(patch, content, np.where(bubbles, np.float32(-900), np.float32(content_hu)))
        else:
            canvas.fill(patch, content, content_hu)
        canvas.fill(patch, gas, -1000.0)

    def _paint_pelvis(self, canvas: Canvas, root: Patch) -> None:
        for wing in self.iliac_wings:
            patch = root.window(wing.lo, wing.hi)
            if patch is not None:
                q = wing.radius(patch)
                canvas.fill(patch, q < 1, self.bone_hu[0])
                canvas.fill(patch, q < 0.6, self.bone_hu[1])
        patch = root.window(self.bladder.lo, self.bladder.hi)
        if patch is not None:
            canvas.fill(patch, self.bladder.inside(patch), self.hu["urine"])

    def _paint_spine(self, canvas: Canvas, root: Patch) -> None:
        """Vertebral bodies (shell, end plates, cancellous core), discs, arches, processes, canal."""
        top_z = float(self.levels[-1, 1])
        lo = np.array([-90.0, self.y_spine - 110, self.z_t12_l1 + Z_EXTENT_MM[0]])
        hi = np.array([90.0, self.y_spine + 60, top_z])
        patch = root.window(lo, hi)
        if patch is None:
            return
        x, y, z = patch.coords()
        zf = np.broadcast_to(z, patch.shape)
        level = np.clip(np.searchsorted(self.levels[:, 0], zf, side="right") - 1, 0, len(self.levels) - 1)
        bottom, top, half_w, half_d, disc, lumbar = (self.levels[level, i] for i in range(6))
        within = (zf >= bottom) & (zf < top)
        t = (zf - bottom) / (top - bottom)  # 0 at the bottom of the level, 1 at its top
        xc, yc = self.spine_center(z)
        dx, dy = x - xc, y - yc
        body_q = (dx / half_w) ** 2 + (dy / half_d) ** 2 + 0.35 * np.clip(-dy / half_d, 0, 1) ** 4
        from_end = np.minimum(zf - bottom, top - zf)
        in_disc = from_end < disc / 2
        body = within & (body_q < 1)
        bone = body & ~in_disc
        shell = (body_q > (1 - 2.0 / half_w) ** 2) | (from_end < disc / 2 + 1.0)
        canvas.fill(patch, bone, self.bone_hu[1])
        canvas.fill(patch, bone & shell, self.bone_hu[0])
        canvas.fill(patch, body & in_disc, self.hu["disc"])
        canal_r = np.float32(9.5)
        canal_y = dy + half_d + canal_r + 2
        canal_d2 = dx * dx + canal_y * canal_y
        arch_level = within & (t > 0.25)
        arch = arch_level & (canal_d2 < (canal_r + 7) ** 2) & (canal_y < half_d * 0.3)
        spinous = arch_level & (np.abs(dx) < 3.5 + 1.5 * t) & (canal_y < 0) & (canal_y > -(canal_r + 38)) & (t < 0.85)
        transverse = arch_level & (lumbar > 0) & (np.abs(dx) < 44) & (np.abs(canal_y - 2) < 3.5) & (t < 0.7)
        canvas.fill(patch, arch | spinous | transverse, 0.8 * self.bone_hu[0])
        canvas.fill(patch, (canal_d2 < canal_r ** 2) & (zf < top_z), self.hu["csf"])
