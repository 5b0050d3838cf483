"""Rate control by analysis-by-synthesis: split a GoP's bytes between the masks, the geometry side
channel and the intra picture by rendering candidate splits with the decoder's own generator.

A candidate is a mask option (the mask codec at one downscale factor, with the object motion coded
for those masks, or no masks at all where the preset allows it) and a picture option (the
background mosaic or the plain first frame, each with the geometry it needs);
the intra picture gets every byte the side information leaves. Each candidate is coded, decoded,
rendered on a subsample of the GoP's frames with ``WarpGenerator`` and scored against the source
(PSNR plus a weighted MS-SSIM). The search is coarse to fine: mask options are compared on the
first picture option, then the other picture options at the winning mask option. Candidates are
ranked with a fast preview of the intra codec (AV1 at speed 9: 10-20x faster, about 0.2-0.4 dB
worse at equal size); only the winner is coded at full effort. Every budget asked of one
picture reuses the codings already made (``IntraSearch``).

Against the best split, the inter mode is searched the same way: the whole GoP coded as video by
SVT-AV1 at the downscale and CRF that fit the bytes the poses and the cheapest masks leave
(``cpsgd.inter``); the two winners are weighed on RGB MS-SSIM. The video wins where the warp
cannot follow the content and the budget pays for it, which keeps quality rising with the rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cpsgd.bench.metrics import ms_ssim, ms_ssim_rgb
from cpsgd.generators.base import GopConditions
from cpsgd.generators.warp import WarpGenerator
from cpsgd.geometry import GeometryCodec, SceneGeometry
from cpsgd.intra.base import INTRA_CODECS, ImageCodec
from cpsgd.inter import INTER_CODECS, InterResult, InterSearch, VideoCodec
from cpsgd.inter.base import MIN_CODED_SIDE
from cpsgd.intra.budget import DEFAULT_SCALES, IntraResult, IntraSearch
from cpsgd.objects import ObjectMotion
from cpsgd.poses.trajectory import Trajectory
from cpsgd.quality import frame_psnr

# Container bytes per section beyond its payload (tag, length, CRC).
SECTION_OVERHEAD_BYTES = 5
MIN_INTRA_BYTES = 64
PREVIEW_AV1_SPEED = 9
PREVIEW_INTER_PRESET = 11  # SVT-AV1 preset ranking inter candidates; the winner is coded at the codec's default
RIVAL_MARGIN = 4.0  # score points a full split search could still gain over its first candidate
MIN_INTER_BYTES = 200  # below this a GoP of video is not worth trying (SVT-AV1's own floor is near it)
# Down to 0.0005 BPP a 512x512 GoP leaves the picture ~150 bytes: coarser pictures must be possible.
RATE_SCALES = (*DEFAULT_SCALES, 8.0, 12.0, 16.0)


def preview_inter_codec(name: str) -> VideoCodec:
    """The inter codec at fast settings, for ranking candidates."""
    cls = INTER_CODECS.get(name)
    return cls(preset=PREVIEW_INTER_PRESET) if name == "svtav1" else cls()  # type: ignore[call-arg]


def preview_codec(name: str) -> ImageCodec:
    """The intra codec at its fastest settings, for ranking candidates."""
    cls = INTRA_CODECS.get(name)
    return cls(speed=PREVIEW_AV1_SPEED) if name == "av1" else cls()  # type: ignore[call-arg]


@dataclass(frozen=True)
class RateControlConfig:
    eval_frames: int = 5  # frames rendered per candidate (the first frame included)
    ms_ssim_weight: float = 25.0  # score = PSNR (dB) + weight * MS-SSIM: 0.04 MS-SSIM ~ 1 dB
    max_mask_share: float = 0.45  # mask options costing more than this share of the budget are skipped
    cut_eval_frames: int = 9  # frames rendered to compare a GoP coded whole against it cut in two
    cut_min_gain: float = 0.5  # score the cut must win by: its second part only stands in for the
                               # next GoP, which the encoder codes afresh (and may make longer)


@dataclass(frozen=True)
class MaskOption:
    """Masks at one downscale factor, with the object motion section that goes with them."""

    factor: int | None  # the mask codec's downscale factor; None: no mask section
    payload: bytes | None
    decoded: np.ndarray | None  # what the decoder will have
    motion_payload: bytes | None = None
    motion: ObjectMotion | None = None  # what the decoder will have

    @property
    def cost(self) -> int:
        return sum(0 if p is None else len(p) + SECTION_OVERHEAD_BYTES for p in (self.payload, self.motion_payload))

    def without_motion(self) -> MaskOption:
        return replace(self, motion_payload=None, motion=None)


@dataclass
class PictureOption:
    """An intra picture and the geometry section that goes with it (None: no section)."""

    name: str  # "mosaic" or "plain"
    image: np.ndarray
    geometry: SceneGeometry | None
    geometry_payload: bytes | None
    search: IntraSearch  # at full effort
    preview: IntraSearch  # fast, for ranking

    @classmethod
    def make(
        cls, name: str, image: np.ndarray, geometry: SceneGeometry | None, codec: GeometryCodec, intra_codec: str
    ) -> PictureOption:
        if geometry is not None and geometry.is_trivial():
            geometry = None
        payload = codec.compress(geometry) if geometry is not None else None
        return cls(
            name, image, geometry, payload, IntraSearch(image, intra_codec, RATE_SCALES),
            IntraSearch(image, intra_codec, RATE_SCALES, codec=preview_codec(intra_codec)),
        )

    @property
    def cost(self) -> int:
        return 0 if self.geometry_payload is None else len(self.geometry_payload) + SECTION_OVERHEAD_BYTES


@dataclass
class Split:
    masks: MaskOption
    picture: PictureOption
    intra: IntraResult
    score: float  # higher is better
    frame_psnr: np.ndarray  # per evaluated frame
    eval_frames: np.ndarray  # their indices in the GoP
    search: SplitSearch  # the search that made it (renders it at other frames)

    def mode_score(self) -> float:
        """The score the modes are weighed on (``render_score`` with RGB MS-SSIM)."""
        reference = self.search.frames[self.eval_frames]
        return render_score(reference, self.render(self.eval_frames), self.search.config.ms_ssim_weight, rgb=True)[0]

    def render(self, picks: np.ndarray) -> np.ndarray:
        """The decoder's frames at GoP indices ``picks``."""
        return self.search.render(self.masks, self.picture, self.intra, picks)

    @property
    def total_bytes(self) -> int:
        return self.masks.cost + self.picture.cost + len(self.intra.payload) + SECTION_OVERHEAD_BYTES

    mode = "warp"

    def better_than(self, other: Split | None, budget: int) -> bool:
        """Within the budget beats over it; then the higher score (over it: the smaller)."""
        if other is None:
            return True
        fits, other_fits = self.total_bytes <= budget, other.total_bytes <= budget
        if fits != other_fits:
            return fits
        return self.score > other.score if fits else self.total_bytes < other.total_bytes


@dataclass
class InterSplit:
    """The GoP coded as video (``cpsgd.inter``), with poses and masks still sent beside it."""

    masks: MaskOption  # sent without object motion: the frames need no transport
    inter: InterResult
    score: float  # ``render_score`` with RGB MS-SSIM, as ``Split.mode_score``
    luma_score: float  # ``render_score`` as the candidates of one mode are ranked
    frame_psnr: np.ndarray
    eval_frames: np.ndarray
    mode = "inter"

    def mode_score(self) -> float:
        return self.score

    def render(self, picks: np.ndarray) -> np.ndarray:
        return self.inter.frames[picks]

    @property
    def total_bytes(self) -> int:
        return self.masks.cost + len(self.inter.payload) + SECTION_OVERHEAD_BYTES


def render_score(
    reference: np.ndarray, rendered: np.ndarray, ms_ssim_weight: float, rgb: bool = False
) -> tuple[float, np.ndarray]:
    """What the rate control maximises, mean PSNR (dB) plus a weighted MS-SSIM, and the per-frame
    PSNR it comes from. Candidates of one mode are ranked on luma MS-SSIM; the modes are weighed
    against each other on ``rgb`` MS-SSIM (three times the cost), which sees colour."""
    per_frame = frame_psnr(reference, rendered)
    similarity = ms_ssim_rgb(reference, rendered) if rgb else ms_ssim(reference, rendered)
    return float(per_frame.mean()) + ms_ssim_weight * similarity, per_frame


def eval_indices(num_frames: int, count: int) -> np.ndarray:
    """Evenly spread frame indices, the first frame always included."""
    return np.unique(np.linspace(0, num_frames - 1, max(1, min(count, num_frames))).round().astype(int))


class SplitSearch:
    """Scores candidate splits of one GoP's ``budget`` bytes (masks + geometry + intra sections)."""

    def __init__(
        self,
        frames: np.ndarray,
        trajectory: Trajectory | None,
        budget: int,
        config: RateControlConfig | None = None,
    ) -> None:
        self.frames = frames
        self.trajectory = trajectory
        self.budget = budget
        self.config = config or RateControlConfig()
        self.picks = eval_indices(len(frames), self.config.eval_frames)
        self.generator = WarpGenerator()

    def intra_budget(self, masks: MaskOption, picture: PictureOption) -> int:
        return max(MIN_INTRA_BYTES, self.budget - masks.cost - picture.cost - SECTION_OVERHEAD_BYTES)

    def code(self, masks: MaskOption, picture: PictureOption, preview: bool = False) -> IntraResult:
        return (picture.preview if preview else picture.search).within(self.intra_budget(masks, picture))

    def render(
        self, masks: MaskOption, picture: PictureOption, intra: IntraResult, picks: np.ndarray | None = None
    ) -> np.ndarray:
        """The decoder's frames at ``picks`` (default: the scoring subsample); the generator sees
        a GoP made of those frames."""
        picks = self.picks if picks is None else picks
        n, h, w = len(picks), *self.frames.shape[1:3]
        trajectory = None
        if self.trajectory is not None:
            trajectory = Trajectory(self.trajectory.intrinsics, self.trajectory.world_to_camera[picks])
        conditions = GopConditions(
            n, h, w, intra.decoded, trajectory,
            None if masks.decoded is None else masks.decoded[picks],
        )
        if picture.geometry is not None:
            conditions.side_channels["geometry"] = picture.geometry
        if masks.motion is not None:
            conditions.side_channels["objects"] = masks.motion.frames(picks)
        return self.generator.generate(conditions)

    def evaluate(self, masks: MaskOption, picture: PictureOption) -> Split:
        return self.score(masks, picture, self.code(masks, picture, preview=True))

    def score(self, masks: MaskOption, picture: PictureOption, intra: IntraResult) -> Split:
        rendered = self.render(masks, picture, intra)
        score, per_frame = render_score(self.frames[self.picks], rendered, self.config.ms_ssim_weight)
        return Split(masks, picture, intra, score, per_frame, self.picks, self)

    def affordable(self, options: list[MaskOption]) -> list[MaskOption]:
        """Mask options within the share of the budget that masks may take (the cheapest always)."""
        limit = self.config.max_mask_share * self.budget
        kept = [m for m in options if m.cost <= limit]
        return kept or [min(options, key=lambda m: m.cost)]

    def choose(self, mask_options: list[MaskOption], pictures: list[PictureOption], rival: float | None = None) -> Split:
        """Coarse to fine: mask options on the first picture (the winner also without its object
        motion, which may not be worth its bytes), then the other pictures. With ``rival`` (the
        luma score of another mode) the search stops after its first candidate when that one
        trails the rival by more than a full search has ever gained (the previewed split is
        returned: at high rates the warp cannot compete, and the search is most of the encode)."""
        best: Split | None = None
        for masks in self.affordable(mask_options):
            split = self.evaluate(masks, pictures[0])
            if best is None and rival is not None and split.score < rival - RIVAL_MARGIN:
                return split
            if split.better_than(best, self.budget):
                best = split
        assert best is not None
        if best.masks.motion is not None:
            split = self.evaluate(best.masks.without_motion(), pictures[0])
            if split.better_than(best, self.budget):
                best = split
        for picture in pictures[1:]:
            split = self.evaluate(best.masks, picture)
            if split.better_than(best, self.budget):
                best = split
        # full effort for the winner only, at the downscale factor its preview chose
        budget = self.intra_budget(best.masks, best.picture)
        search = best.picture.search
        intra = search.within(budget, (best.intra.scale,))
        if len(intra.payload) > budget:  # the full-effort coding is a little larger: go coarser
            intra = search.within(budget, tuple(s for s in search.scales if s > best.intra.scale) or None)
        return self.score(best.masks, best.picture, search.fill(intra, budget))

    def inter(self, mask_options: list[MaskOption], codec: str) -> InterSplit | None:
        """The GoP as video within the budget, with the cheapest masks that are sent; None when
        the frames are too small or the budget cannot pay for a video."""
        sent = [m for m in mask_options if m.payload is not None] or mask_options
        masks = min(sent, key=lambda m: m.cost).without_motion()
        budget = self.budget - masks.cost - SECTION_OVERHEAD_BYTES
        if min(self.frames.shape[1:3]) < MIN_CODED_SIDE or budget < MIN_INTER_BYTES:
            return None

        def score(reference: np.ndarray, decoded: np.ndarray) -> float:
            return render_score(reference, decoded, self.config.ms_ssim_weight)[0]

        found = InterSearch(self.frames, preview_inter_codec(codec), score, self.picks).within(budget)
        if found is None:
            return None
        # Full effort at the scale the preview chose, its CRF within a step or two of the
        # preview's; where the slower preset's coding is larger and no CRF fits, the next coarser
        # scale that does.
        search = InterSearch(self.frames, INTER_CODECS.get(codec)(), score, self.picks)
        final = search.within(budget, (found.scale,), near=found.quantiser)
        for scale in sorted(s for s in search.scales if s > found.scale):
            if final is not None:
                break
            final = search.within(budget, (scale,))
        if final is None or final.score < found.score:
            final = found
        reference = self.frames[self.picks]
        score, per_frame = render_score(reference, final.frames[self.picks], self.config.ms_ssim_weight, rgb=True)
        return InterSplit(masks, final, score, final.score, per_frame, self.picks)


def drift_cut(split: Split, drift_db: float, min_frames: int) -> int | None:
    """Frame count to cut the GoP to when a rendered frame falls ``drift_db`` below the first
    rendered frame after the intra frame (the intra frame itself renders as coded, far above any
    predicted frame at these rates), or None when the GoP holds. Both parts keep ``min_frames``."""
    if split.frame_psnr.size < 3:
        return None
    floor = float(split.frame_psnr[1]) - drift_db
    num_frames = int(split.eval_frames[-1]) + 1
    for index, value in zip(split.eval_frames[2:], split.frame_psnr[2:]):
        if value < floor and index >= min_frames:
            cut = min(int(index), num_frames - min_frames)
            return cut if cut >= min_frames else None
    return None


def cut_gain(
    frames: np.ndarray, whole: Split, head: Split, tail: Split, cut: int, count: int, ms_ssim_weight: float
) -> float:
    """How much better (in ``render_score`` units) the GoP renders as two GoPs split at ``cut``
    (``head``, ``tail``) than as one (``whole``), on ``count`` frames spread over all of it."""
    picks = eval_indices(len(frames), count)
    as_one = whole.render(picks)
    as_two = np.concatenate([head.render(picks[picks < cut]), tail.render(picks[picks >= cut] - cut)])
    reference = frames[picks]
    return render_score(reference, as_two, ms_ssim_weight)[0] - render_score(reference, as_one, ms_ssim_weight)[0]
