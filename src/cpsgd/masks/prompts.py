"""Box prompts for the SAM2 segmenter: where the moving objects are on one frame.

Two pluggable sources, both returning a ``Prompt`` (a frame index and pixel boxes):
- ``MotionBoxes``: the motion segmenter's connected regions on the first frame that has any
  (no model needed).
- ``TextBoxes``: a caption (the user's, or a ``Captioner``'s description of the first frame, e.g.
  a local vision-language model) is parsed for its moving objects (``RuleBasedParser`` by default,
  or ``LLMParser`` around any text-generation callable, e.g. ``text_generator``: a local
  transformers causal language model), and the phrases are found on the first
  frame by a zero-shot detector: Grounding DINO through transformers' "zero-shot-object-detection"
  pipeline, loaded from a local directory (or any callable with the same contract).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from cpsgd.errors import InputError

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True)
class Prompt:
    frame_index: int
    boxes: list[Box] = field(default_factory=list)


class BoxSource(Protocol):
    def prompt(self, frames: np.ndarray) -> Prompt: ...


class MovingObjectParser(Protocol):
    def __call__(self, caption: str) -> list[str]: ...


# Verbs of self-propelled motion, as stems; a caption word matches a stem plus an inflection.
_MOTION_STEMS = (
    "walk", "run", "jog", "jump", "hop", "swim", "fly", "flie", "driv", "ride", "rid", "danc", "mov",
    "roll", "spin", "climb", "crawl", "skat", "ski", "surf", "cycl", "pedal", "gallop", "trot", "rac",
    "chas", "play", "kick", "throw", "swing", "turn", "paddl", "row", "sail", "glid", "leap", "dash",
    "sprint", "wander", "stroll", "march", "fall", "slid", "wav", "shak", "pass", "cross", "approach",
    "leav", "enter", "head", "travel", "bounc", "flap", "div", "twirl", "breakdanc", "perform", "exercis",
    "fight", "run", "wobbl", "sway",
)
_INFLECTIONS = ("", "e", "s", "es", "ed", "ing", "d", "ning", "ming", "ping", "ging")
_MOTION_WORDS = frozenset(stem + end for stem in _MOTION_STEMS for end in _INFLECTIONS) | {
    "ran", "swam", "flew", "drove", "rode", "fell", "flown", "driven", "ridden", "swum", "spun", "dove", "leapt",
}
_SKIP = frozenset(
    (
        "a", "an", "the", "this", "that", "these", "those", "some", "two", "three", "several", "many",
        "few", "one", "his", "her", "their", "its", "our", "is", "are", "was", "were", "be", "being",
        "been", "there", "here", "it", "they", "he", "she", "also", "just", "then", "now", "still", "very",
    )
)
_CLAUSE_BREAKS = frozenset(
    (",", ".", ";", ":", "!", "?", "(", ")", "and", "while", "as", "but", "whereas", "when", "where", "who", "which")
)
_PREPOSITIONS = frozenset(
    (
        "with", "behind", "in", "on", "at", "near", "by", "of", "from", "across", "along", "through", "over",
        "under", "around", "into", "onto", "past", "toward", "towards", "to", "beside", "between",
    )
)


class RuleBasedParser:
    """Moving objects from a caption by a small grammar: a clause's noun phrase that comes just
    before a motion verb ("a black swan swims ...", "the car driving ..."); when that phrase
    belongs to a preposition ("a man in a red shirt is dancing"), the clause's subject ("man");
    when the clause has none ("two horses, one galloping"), the previous clause's.

    Returns lower-case phrases in caption order, without repeats. Objects named without a
    motion verb ("a crowd watches") are left out: they are context, not the moving foreground.
    Without a part-of-speech tagger it can be fooled; ``LLMParser`` is the hook for better parsing.
    """

    def __init__(self, max_words: int = 3) -> None:
        self.max_words = max_words

    def __call__(self, caption: str) -> list[str]:
        found: list[str] = []
        subject: list[str] = []  # the clause's first phrase
        phrase: list[str] = []  # the phrase being read
        after_preposition = False
        topic: list[str] = []  # the last subject seen, for "two horses, one galloping"
        for word in re.findall(r"[a-z][a-z'-]*|[,.;:!?()]", caption.lower()):
            if word in _CLAUSE_BREAKS:
                topic = subject or phrase or topic
                subject, phrase, after_preposition = [], [], False
            elif word in _PREPOSITIONS:
                subject = subject or phrase
                phrase, after_preposition = [], True
            elif word in _MOTION_WORDS:
                words = (subject if (after_preposition or not phrase) else phrase) or topic
                name = " ".join(words[-self.max_words :])
                if name and name not in found:
                    found.append(name)
                subject, phrase, after_preposition = subject or phrase, [], False
            elif word not in _SKIP:
                phrase.append(word)
        return found


_LLM_INSTRUCTIONS = """List the objects that move by themselves in the video description.
Answer with a comma-separated list of short noun phrases, or "none".
Description: a black swan swims across a pond near the reeds
Objects: black swan
Description: two horses in a field, one galloping and one standing still
Objects: galloping horse
Description: a quiet street at night
Objects: none
Description: {caption}
Objects:"""


class LLMParser:
    """Moving objects by a language model: ``generate(prompt) -> completion`` is the user's hook
    (any local LLM); the few-shot prompt asks for a comma-separated list."""

    def __init__(self, generate: Callable[[str], str]) -> None:
        self.generate = generate

    def __call__(self, caption: str) -> list[str]:
        answer = self.generate(_LLM_INSTRUCTIONS.format(caption=caption.strip()))
        first_line = answer.strip().splitlines()[0] if answer.strip() else ""
        names = [n.strip().strip(".").lower() for n in first_line.split(",")]
        return [n for n in dict.fromkeys(names) if n and n != "none"]


def text_generator(model_dir: str | Path, device: str = "cpu", max_new_tokens: int = 24) -> Callable[[str], str]:
    """A causal language model from a local transformers directory ("text-generation" pipeline),
    decoding greedily so that a caption always gives the same objects: ``LLMParser``'s backend."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"parser model directory {model_dir} does not exist")
    from transformers import pipeline

    complete = pipeline("text-generation", model=str(model_dir), device=device)

    def run(prompt: str) -> str:
        answer = complete(prompt, max_new_tokens=max_new_tokens, do_sample=False, return_full_text=False)
        return str(answer[0]["generated_text"])

    return run


def regions_to_boxes(mask: np.ndarray, min_area: int = 1, max_boxes: int = 8) -> list[Box]:
    """Bounding boxes of a mask's connected components, largest first."""
    _, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    parts = [s for s in stats[1:] if s[cv2.CC_STAT_AREA] >= min_area]
    parts.sort(key=lambda s: -int(s[cv2.CC_STAT_AREA]))
    return [
        (float(x), float(y), float(x + w - 1), float(y + h - 1))
        for x, y, w, h, _ in parts[:max_boxes]
    ]


class MotionBoxes:
    """Boxes around the motion segmenter's regions on the first frame that has any."""

    def __init__(self, segmenter=None, min_area_fraction: float = 0.003, max_boxes: int = 8) -> None:
        from cpsgd.masks.motion import MotionSegmenter

        self.segmenter = segmenter or MotionSegmenter()
        self.min_area_fraction = min_area_fraction
        self.max_boxes = max_boxes

    def prompt(self, frames: np.ndarray) -> Prompt:
        masks = self.segmenter.segment(frames)
        min_area = max(1, int(self.min_area_fraction * masks.shape[1] * masks.shape[2]))
        for index, mask in enumerate(masks):
            boxes = regions_to_boxes(mask, min_area, self.max_boxes)
            if boxes:
                return Prompt(index, boxes)
        return Prompt(0, [])


Captioner = Callable[[np.ndarray], str]
"""RGB image -> one-sentence description."""

Detector = Callable[[np.ndarray, Sequence[str]], list[dict]]
"""(RGB image, phrases) -> [{"score": float, "label": str, "box": {"xmin", "ymin", "xmax", "ymax"}}],
the output contract of transformers' zero-shot-object-detection pipeline."""


def grounding_dino_detector(model_dir: str | Path, device: str = "cpu") -> Detector:
    """Grounding DINO (or OWL-ViT) from a local transformers directory, as a ``Detector``."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"detector directory {model_dir} does not exist")
    from PIL import Image
    from transformers import pipeline

    detect = pipeline("zero-shot-object-detection", model=str(model_dir), device=device)

    def run(image: np.ndarray, phrases: Sequence[str]) -> list[dict]:
        return detect(Image.fromarray(image), candidate_labels=list(phrases))

    return run


def vlm_captioner(model_dir: str | Path, device: str = "cpu", max_new_tokens: int = 40) -> Captioner:
    """A vision-language model from a local transformers directory ("image-text-to-text"
    pipeline), asked for a one-sentence description of the frame, as a ``Captioner``."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"captioning model directory {model_dir} does not exist")
    from PIL import Image
    from transformers import pipeline

    describe = pipeline("image-text-to-text", model=str(model_dir), device=device)

    def run(image: np.ndarray) -> str:
        question = "Describe this video frame in one sentence, saying what moves."
        messages = [
            {"role": "user", "content": [{"type": "image", "image": Image.fromarray(image)}, {"type": "text", "text": question}]}
        ]
        answer = describe(text=messages, max_new_tokens=max_new_tokens, return_full_text=False)
        return str(answer[0]["generated_text"]).strip()

    return run


class TextBoxes:
    """Boxes of the caption's moving objects on frame 0, found by a zero-shot detector.
    ``caption``: the text, or a ``Captioner`` that describes frame 0."""

    def __init__(
        self,
        caption: str | Captioner,
        detector: Detector,
        parser: MovingObjectParser | None = None,
        threshold: float = 0.3,
        max_boxes: int = 8,
    ) -> None:
        self.caption = caption
        self.detector = detector
        self.parser = parser or RuleBasedParser()
        self.threshold = threshold
        self.max_boxes = max_boxes

    def prompt(self, frames: np.ndarray) -> Prompt:
        caption = self.caption if isinstance(self.caption, str) else self.caption(frames[0])
        phrases = self.parser(caption)
        if not phrases:
            return Prompt(0, [])
        detections = [d for d in self.detector(frames[0], phrases) if d["score"] >= self.threshold]
        detections.sort(key=lambda d: -d["score"])
        h, w = frames.shape[1:3]
        boxes = []
        for d in detections[: self.max_boxes]:
            b = d["box"]
            x0, x1 = sorted((float(np.clip(b["xmin"], 0, w - 1)), float(np.clip(b["xmax"], 0, w - 1))))
            y0, y1 = sorted((float(np.clip(b["ymin"], 0, h - 1)), float(np.clip(b["ymax"], 0, h - 1))))
            boxes.append((x0, y0, x1, y1))
        return Prompt(0, boxes)
