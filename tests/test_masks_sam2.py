"""The "sam2" segmenter (tiny random SAM2, the real code path) and its box prompts."""

import numpy as np
import pytest

from cpsgd.errors import InputError
from cpsgd.masks import SEGMENTERS
from cpsgd.masks.prompts import LLMParser, MotionBoxes, Prompt, RuleBasedParser, TextBoxes, regions_to_boxes

# A SAM2 small enough for a CPU test: 128-pixel input, a one-block-per-stage Hiera, one memory
# attention layer. Random weights: the test checks the plumbing, not the masks' quality.
TINY_SAM2 = (
    "++model.image_size=128",
    "++model.image_encoder.trunk.embed_dim=16",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.dim_feedforward=64",
    "++model.memory_attention.layer.self_attention.feat_sizes=[8,8]",
    "++model.memory_attention.layer.cross_attention.feat_sizes=[8,8]",
    "++model.num_maskmem=2",
)


class FixedBoxes:
    def __init__(self, prompt: Prompt) -> None:
        self._prompt = prompt

    def prompt(self, frames: np.ndarray) -> Prompt:
        return self._prompt


def test_tiny_random_sam2_runs_the_video_predictor():
    pytest.importorskip("sam2", reason="the sam2 package is not installed (the extra does not bring it: see the README, Optional backends)")
    import torch

    from cpsgd.masks.sam2_segmenter import DEFAULT_CONFIG, Sam2Segmenter, build_predictor

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead on a shared CPU
    try:
        predictor = build_predictor(DEFAULT_CONFIG, None, "cpu", TINY_SAM2)
        frames = (np.random.default_rng(0).random((3, 64, 64, 3)) * 255).astype(np.uint8)
        # Two objects prompted on frame 1: tracks forwards and backwards, ids 1 and 2.
        boxes = FixedBoxes(Prompt(1, [(4.0, 4.0, 30.0, 30.0), (34.0, 30.0, 60.0, 62.0)]))
        masks = Sam2Segmenter(boxes=boxes, predictor=predictor).segment(frames)
        empty = Sam2Segmenter(boxes=FixedBoxes(Prompt(0, [])), predictor=predictor).segment(frames)
    finally:
        torch.set_num_threads(threads)
    assert masks.shape == (3, 64, 64) and masks.dtype == np.uint8
    assert set(np.unique(masks)) <= {0, 1, 2}
    assert not empty.any()


def test_sam2_needs_a_checkpoint(tmp_path):
    with pytest.raises(InputError):
        SEGMENTERS.get("sam2")()
    with pytest.raises(InputError):
        SEGMENTERS.get("sam2")(checkpoint=tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "caption, expected",
    [
        ("A black swan swims in a pond near the reeds.", ["black swan"]),
        ("a man in a red shirt is dancing while a crowd watches", ["man"]),
        ("The car drives around a roundabout", ["car"]),
        ("Two horses in a field, one galloping and one standing still.", ["horses"]),
        ("the boy rides a bike and the dog chases him", ["boy", "dog"]),
        ("A quiet street at night", []),
    ],
)
def test_rule_based_parser(caption, expected):
    assert RuleBasedParser()(caption) == expected


def test_llm_parser_hook():
    seen = []

    def generate(prompt: str) -> str:
        seen.append(prompt)
        return " Galloping horse, rider.\nDescription: ignored"

    assert LLMParser(generate)("a rider on a galloping horse") == ["galloping horse", "rider"]
    assert seen[0].rstrip().endswith("a rider on a galloping horse\nObjects:")
    assert LLMParser(lambda p: "none")("a still lake") == []


def test_text_boxes_from_a_detector():
    calls = []

    def detector(image, phrases):
        calls.append(list(phrases))
        return [
            {"score": 0.9, "label": "dog", "box": {"xmin": -5, "ymin": 10, "xmax": 40, "ymax": 200}},
            {"score": 0.1, "label": "dog", "box": {"xmin": 1, "ymin": 1, "xmax": 2, "ymax": 2}},
            {"score": 0.5, "label": "ball", "box": {"xmin": 50, "ymin": 20, "xmax": 30, "ymax": 25}},
        ]

    frames = np.zeros((2, 100, 80, 3), np.uint8)
    prompt = TextBoxes("a dog chases a ball rolling on grass", detector).prompt(frames)
    assert calls == [["dog", "ball"]]
    assert prompt == Prompt(0, [(0.0, 10.0, 40.0, 99.0), (30.0, 20.0, 50.0, 25.0)])
    assert TextBoxes("an empty room", detector).prompt(frames) == Prompt(0, [])
    captioned = TextBoxes(lambda image: "a ball rolling", detector).prompt(frames)
    assert calls[-1] == ["ball"] and len(captioned.boxes) == 2


def test_motion_boxes_and_regions():
    mask = np.zeros((20, 30), np.uint8)
    mask[2:5, 3:9] = 1
    mask[10:18, 15:25] = 1
    assert regions_to_boxes(mask) == [(15.0, 10.0, 24.0, 17.0), (3.0, 2.0, 8.0, 4.0)]

    class Segmenter:
        def segment(self, frames):
            out = np.zeros(frames.shape[:3], np.uint8)
            out[2] = mask
            return out

    prompt = MotionBoxes(Segmenter(), min_area_fraction=0.05).prompt(np.zeros((4, 20, 30, 3), np.uint8))
    assert prompt == Prompt(2, [(15.0, 10.0, 24.0, 17.0)])


def test_text_boxes_with_a_tiny_random_grounding_dino(tmp_path):
    """The real transformers zero-shot detection path, from a local directory."""
    pytest.importorskip("transformers", reason="the diffusion extra (transformers) is not installed")
    import torch
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        SwinConfig,
    )

    from cpsgd.masks.prompts import grounding_dino_detector

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "dog", "ball", "grass"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    backbone = SwinConfig(
        image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
        window_size=2, out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig(
        vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )
    config = GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        num_queries=10, num_feature_levels=3, encoder_n_points=1, decoder_n_points=1, max_text_len=32,
    )
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).save_pretrained(tmp_path)
    GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64}),
        tokenizer=BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")),
    ).save_pretrained(tmp_path)

    frames = (np.random.default_rng(0).random((2, 48, 64, 3)) * 255).astype(np.uint8)
    source = TextBoxes("a dog chases a ball", grounding_dino_detector(tmp_path), threshold=0.0, max_boxes=3)
    prompt = source.prompt(frames)
    assert prompt.frame_index == 0 and len(prompt.boxes) == 3
    for x0, y0, x1, y1 in prompt.boxes:
        assert 0 <= x0 <= x1 <= 63 and 0 <= y0 <= y1 <= 47
