"""The prompt pipeline's model backends: a local text-generation parser and a captioner whose
description is transmitted (tiny random models built here; the real ones load the same way)."""

from __future__ import annotations

import argparse

import pytest
from PIL import Image

pytest.importorskip("transformers")

from cpsgd.bitstream.container import BitstreamReader, SectionType  # noqa: E402
from cpsgd.cli import main  # noqa: E402
from cpsgd.errors import InputError  # noqa: E402
from cpsgd.masks import cli as masks_cli  # noqa: E402
from cpsgd.masks import prompts  # noqa: E402
from cpsgd.text import decode_caption  # noqa: E402
from tests.conftest import textured_clip  # noqa: E402


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A 1-layer GPT-2 with a word-level tokenizer, saved as a local transformers directory."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = "list the objects that move by themselves in video description answer with a comma none".split()
    vocab = {w: i for i, w in enumerate(["[UNK]", "<eos>", ",", ":", ".", '"', "-", *dict.fromkeys(words)])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", eos_token="<eos>")
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=512, n_embd=16, n_layer=1, n_head=2, bos_token_id=1, eos_token_id=1,
        initializer_range=1.0,  # spread-out logits: the greedy completion is made of real words
    )
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = 1
    model.generation_config.eos_token_id = None  # a random model would often stop at once
    folder = tmp_path_factory.mktemp("lm")
    fast.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def test_text_generator_backs_the_llm_parser(tiny_lm):
    generate = prompts.text_generator(tiny_lm, max_new_tokens=6)
    prompt = "list the objects that move : a dog"
    completion = generate(prompt)
    assert isinstance(completion, str) and completion.strip()
    assert not completion.startswith(prompt)  # only the completion, not the prompt echoed
    assert generate(prompt) == completion  # greedy: the same caption gives the same objects
    # The parser reads the model's completion of its few-shot prompt.
    completions = []
    objects = prompts.LLMParser(lambda text: completions.append(generate(text)) or completions[-1])("a dog runs")
    assert objects == prompts.LLMParser(lambda _: completions[0])("ignored")
    with pytest.raises(InputError, match="does not exist"):
        prompts.text_generator(tiny_lm / "missing")


def test_parser_model_option_reaches_the_segmenter(tiny_lm, tmp_path, monkeypatch):
    built = {}

    class FakeSam2:
        def __init__(self, checkpoint, config, boxes, device):
            built["boxes"] = boxes

    import cpsgd.masks.sam2_segmenter as sam2_module

    monkeypatch.setattr(sam2_module, "Sam2Segmenter", FakeSam2)
    monkeypatch.setattr(prompts, "grounding_dino_detector", lambda *a: (lambda image, phrases: []))
    parser = argparse.ArgumentParser()
    parser.add_argument("--segmenter")
    parser.add_argument("--caption")
    masks_cli.add_sam2_options(parser)
    args = parser.parse_args(["--segmenter", "sam2", "--boxes", "text", "--detector", str(tmp_path),
                              "--parser-model", str(tiny_lm)])
    masks_cli.make_segmenter(args, caption="a dog runs")
    boxes = built["boxes"]
    assert isinstance(boxes.parser, prompts.LLMParser) and boxes.caption == "a dog runs"
    args = parser.parse_args(["--segmenter", "sam2", "--boxes", "text", "--detector", str(tmp_path)])
    masks_cli.make_segmenter(args, caption="a dog runs")
    assert isinstance(built["boxes"].parser, prompts.RuleBasedParser)


def test_captioner_text_is_transmitted(tmp_path, monkeypatch):
    seen = []

    def fake_vlm(model_dir, device="cpu"):
        def describe(image):
            seen.append(image.shape)
            return "a red ball rolls across the floor"

        return describe

    monkeypatch.setattr(prompts, "vlm_captioner", fake_vlm)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(textured_clip(3, 32, 48)):
        Image.fromarray(frame).save(frames / f"{i:03d}.png")
    out = tmp_path / "clip.cpsgd"
    options = ["--segmenter", "none", "--pose-estimator", "none", "--no-rate-control", "-q"]
    assert main(["encode", str(frames), "-o", str(out), "--captioner", str(tmp_path), *options]) == 0
    assert seen == [(32, 48, 3)]  # frame 0 is described once
    text = next(BitstreamReader.from_bytes(out.read_bytes()).gops()).find(SectionType.TEXT)
    assert decode_caption(text.backend, text.payload) == "a red ball rolls across the floor"
    # A caption given by the user wins over the captioner.
    out.unlink()
    assert main(["encode", str(frames), "-o", str(out), "--captioner", str(tmp_path), "--caption", "a ball",
                 *options]) == 0
    text = next(BitstreamReader.from_bytes(out.read_bytes()).gops()).find(SectionType.TEXT)
    assert decode_caption(text.backend, text.payload) == "a ball" and len(seen) == 1
