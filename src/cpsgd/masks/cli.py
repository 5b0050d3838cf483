"""`cpsgd masks estimate|compress|decompress`: wire with ``add_mask_commands(subparsers)``."""

from __future__ import annotations

import argparse
from pathlib import Path

from cpsgd.errors import InputError
from cpsgd.masks.base import MASK_CODECS, SEGMENTERS, Segmenter
from cpsgd.masks.codec import ContextMaskCodec
from cpsgd.masks.io import compress_mask_dir, decompress_mask_file, write_mask_dir
from cpsgd.video.writer import check_output, commit_path, create_temporary


def add_mask_commands(subparsers: argparse._SubParsersAction) -> None:
    masks = subparsers.add_parser("masks", help="moving-object masks: estimate, compress, decompress")
    sub = masks.add_subparsers(dest="masks_command", required=True)

    p = sub.add_parser("estimate", help="segment the moving objects of a video into a mask folder")
    p.add_argument("input", type=Path, help="video file or folder of frames")
    p.add_argument("-o", "--output", type=Path, required=True, help="mask folder to write (PNG per frame)")
    p.add_argument("--segmenter", default="motion", choices=SEGMENTERS.names(), help="segmenter (default motion)")
    p.add_argument("--size", type=int, help="center-crop to a square and resize to SIZE first")
    p.add_argument("--frames", type=int, help="segment at most this many frames")
    p.add_argument("--gop", type=int, default=25, help="frames segmented together (default 25)")
    p.add_argument("--caption", help="caption naming the moving objects (--boxes text)")
    add_sam2_options(p)
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(handler=cmd_masks_estimate)

    p = sub.add_parser("compress", help="code a mask folder into a standalone mask file")
    p.add_argument("input", type=Path, help="mask folder (DAVIS annotation layout)")
    p.add_argument("-o", "--output", type=Path, required=True, help="mask file to write (.bin)")
    p.add_argument("--codec", default="cabac", choices=MASK_CODECS.names(), help="mask codec (default cabac)")
    p.add_argument("--j-target", type=float, default=0.92, help="mean J (IoU) each GoP keeps; the factor follows")
    p.add_argument("--factor", type=int, help="a fixed downscale factor instead of --j-target (1 = lossless)")
    p.add_argument("--tolerance", type=float, default=0.25, help="coverage band left to the model (0..0.5), with --factor")
    p.add_argument("--gop", type=int, default=25, help="frames coded together")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(handler=cmd_masks_compress)

    p = sub.add_parser("decompress", help="decode a mask file into a mask folder")
    p.add_argument("input", type=Path, help="mask file")
    p.add_argument("-o", "--output", type=Path, required=True, help="mask folder to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(handler=cmd_masks_decompress)


def add_sam2_options(p: argparse.ArgumentParser) -> None:
    """Options of the sam2 segmenter (`masks estimate` and `encode`); the caption is the command's."""
    group = p.add_argument_group("sam2 segmenter (--segmenter sam2)")
    group.add_argument("--sam2-checkpoint", type=Path, help="SAM2 checkpoint file")
    group.add_argument("--sam2-config", default="configs/sam2.1/sam2.1_hiera_t.yaml", help="SAM2 config name")
    group.add_argument("--boxes", choices=("motion", "text"), default="motion", help="SAM2 box prompts from")
    group.add_argument("--captioner", type=Path, help="local vision-language model directory, when no --caption "
                       "(encode sends its description of frame 0 as the text section)")
    group.add_argument("--detector", type=Path, help="local Grounding DINO directory (--boxes text)")
    group.add_argument("--parser-model", type=Path, help="local text-generation model that lists the caption's "
                       "moving objects (--boxes text; default: the rule-based parser)")
    group.add_argument("--device", default="cpu", help="torch device for SAM2 and the detector")


def make_segmenter(args: argparse.Namespace, caption: str | None = None) -> Segmenter:
    """``caption``: the text the encoder sends (its own, or its captioner's), used for text prompts."""
    if args.segmenter != "sam2":
        return SEGMENTERS.get(args.segmenter)()
    from cpsgd.masks.prompts import LLMParser, TextBoxes, grounding_dino_detector, text_generator, vlm_captioner
    from cpsgd.masks.sam2_segmenter import Sam2Segmenter

    boxes = None
    if args.boxes == "text":
        caption = caption or args.caption
        if not (caption or args.captioner) or not args.detector:
            raise InputError("--boxes text needs --detector, and --caption or --captioner")
        parser = LLMParser(text_generator(args.parser_model, args.device)) if args.parser_model else None
        described = caption or vlm_captioner(args.captioner, args.device)
        boxes = TextBoxes(described, grounding_dino_detector(args.detector, args.device), parser)
    return Sam2Segmenter(args.sam2_checkpoint, args.sam2_config, boxes, args.device)


def cmd_masks_estimate(args: argparse.Namespace) -> None:
    from cpsgd.video import open_video

    check_output(args.output, args.force, folder=True, inputs=(args.input,))
    if not 1 <= args.gop <= 1024:
        raise InputError(f"--gop {args.gop} is out of range (1 to 1024)")
    segmenter = make_segmenter(args)
    source = open_video(args.input, size=args.size, max_frames=args.frames)
    write_mask_dir((segmenter.segment(gop) for gop in source.iter_gops(args.gop)), args.output, args.force)


def cmd_masks_compress(args: argparse.Namespace) -> None:
    args.output = check_output(args.output, args.force, inputs=(args.input,))
    codec_class = MASK_CODECS.get(args.codec)
    if codec_class is not ContextMaskCodec:
        codec = codec_class()
    elif args.factor is not None:
        codec = ContextMaskCodec(args.factor, args.tolerance)
    else:
        codec = ContextMaskCodec(tolerance=args.tolerance, j_target=args.j_target)
    data = compress_mask_dir(args.input, codec, args.gop)
    tmp = create_temporary(args.output)
    tmp.write_bytes(data)
    commit_path(tmp, args.output)


def cmd_masks_decompress(args: argparse.Namespace) -> None:
    if not args.input.is_file():
        raise InputError(f"{args.input} does not exist")
    write_mask_dir(decompress_mask_file(args.input.read_bytes()), args.output, args.force)
