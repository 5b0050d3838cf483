"""End to end on a tiny dataset: results, resume, summary, plots, and the HTML report in Chromium."""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cpsgd.bench.run as run_module
from cpsgd.bench import BenchConfig, add_bench_command, bench
from cpsgd.bench.anchors import AnchorSetting
from cpsgd.bench.cli import config_from_args
from cpsgd.bench.datasets import Protocol
from cpsgd.errors import InputError
from tests.test_bench_datasets import make_davis

TARGETS = (0.02, 0.05)
ANCHORS = (
    AnchorSetting("x264", 64, "crf", 40), AnchorSetting("x264", 32, "qp", 57),
    AnchorSetting("x265", 64, "crf", 40), AnchorSetting("x265", 64, "qp", 51),
    AnchorSetting("svtav1", 64, "crf", 55), AnchorSetting("svtav1", 32, "qp", 63),
)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[BenchConfig, Path]:
    root = tmp_path_factory.mktemp("bench")
    config = BenchConfig(
        dataset=make_davis(root / "davis", ("seq_a", "seq_b"), frames=4),
        out_dir=root / "report",
        codecs=("hold", "intra", "x264", "x265", "svtav1"),
        targets=TARGETS,
        protocol=Protocol(frames=4, size=64),
        anchor_settings=ANCHORS,
        metrics=("psnr", "ms_ssim", "vmaf", "disocclusion", "temporal", "masks"),
    )
    return config, bench(config, progress=False)


def rows_of(config: BenchConfig) -> list[dict]:
    return [json.loads(line) for line in (config.out_dir / "results.jsonl").read_text().splitlines()]


def test_results_have_a_row_per_sequence_codec_and_point(report):
    config, _ = report
    rows = rows_of(config)
    assert len(rows) == 2 * (2 + 2 + len(ANCHORS))
    for row in rows:
        assert row["bpp"] == pytest.approx(row["bits"] / (4 * 64 * 64))
        if row["codec"] in ("hold", "intra") or row["bpp"] <= run_module.SCORE_RATE_LIMIT * max(TARGETS):
            assert {"psnr", "ms_ssim", "vmaf", "disocc_psnr", "warp_err_excess"} <= set(row["metrics"])
        else:  # far above every target: coded, not scored
            assert row["metrics"] == {} and any("not scored" in n for n in row["notes"])
        assert len(row["frame_psnr"]) == 4 and row["reference"]["warp_err"] is not None
        assert row["protocol"] == {"frames": 4, "size": 64} and "pyav" in row["versions"]
        if row["codec"] in ("hold", "intra"):
            assert sum(row["parts"].values()) == row["bits"] and "intra" in row["parts"]
            assert row["settings"]["target_bpp"] in TARGETS and row["gop_starts"][0] == 0
        else:
            assert row["settings"]["options"] and row["settings"]["scale"] in (64, 32)


def test_resume_does_not_recompute_finished_points(report, monkeypatch):
    config, _ = report
    before = (config.out_dir / "results.jsonl").read_text()

    def fail(*args, **kwargs):
        raise AssertionError("a finished point was coded again")

    monkeypatch.setattr(run_module, "score_point", fail)
    assert len(run_module.run_bench(config, progress=False)) == len(before.splitlines())
    assert (config.out_dir / "results.jsonl").read_text() == before


def test_summary_plots_and_breakdown(report):
    config, _ = report
    summary = (config.out_dir / "summary.md").read_text()
    assert "## Minimum rate per codec" in summary and "## VMAF at target rates" in summary
    for codec in ("hold", "intra", "x264", "x265", "svtav1"):
        assert f"| {codec} |" in summary
    assert "## cpsgd bits per part" in summary and "hold-bpp0.02" in summary
    for metric in ("psnr", "ms_ssim", "vmaf", "mask_j", "disocc_psnr", "warp_err_excess"):
        assert (config.out_dir / f"rd_{metric}.png").read_bytes()[:4] == b"\x89PNG"
    assert "Viewer metrics" in summary and "NIQE" not in summary  # NIQE needs 192-pixel frames


def test_strips_for_every_sequence_and_target(report):
    config, page = report
    summary = (config.out_dir / "summary.md").read_text()
    html = page.read_text()
    for seq in ("seq_a", "seq_b"):
        for target in TARGETS:
            name = f"strips/{seq}_bpp{target:g}.png"
            strip = np.asarray(Image.open(config.out_dir / name))
            # A label band, then frames 0, 2 and 3 of the 4-frame clip; source | hold | anchor.
            assert strip.shape == (22 + 3 * 64, 3 * 64, 3)
            assert f"]({name})" in summary and f"src='{name}'" in html
    # The run saved the strip frames of every hold and intra point, so the report did not decode them again.
    assert len(list((config.out_dir / "decoded").glob("*.npz"))) == 2 * 2 * len(TARGETS)


def test_an_existing_report_is_kept_unless_forced(report, capsys):
    config, page = report
    before = page.read_text()
    with pytest.raises(InputError, match="--force"):
        bench(config, progress=False)
    assert page.read_text() == before
    assert run_module.estimate_seconds(config) == (0.0, 0)  # every point is done: only the report is rebuilt
    assert bench(config, progress=False, force=True) == page


_PROBE = """<script>
addEventListener('load', () => setTimeout(() => {
  const ok = (xs, f) => [...xs].map(f);
  document.title = 'PROBE ' + JSON.stringify({
    images: ok(document.images, i => i.complete && i.naturalWidth > 0),
    videos: ok(document.querySelectorAll('video'), v => v.readyState >= 2 ? v.videoWidth : 0)});
}, 2000));
</script></body>"""


def test_html_report_renders_plots_and_videos_in_chromium(report):
    config, page = report
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # offline: no CDN
    probe = page.with_name("probe.html")
    probe.write_text(html.replace("</body>", _PROBE))
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=60,
    ).stdout
    found = re.search(r"<title>PROBE (.*?)</title>", dom)
    assert found, "the page did not finish loading"
    state = json.loads(found.group(1))
    # The RD plots and the strips (2 sequences x 2 targets).
    assert len(state["images"]) == len(list(config.out_dir.glob("rd_*.png"))) + 4 and all(state["images"])
    # One side-by-side clip per sequence: source | hold | anchor, 64 pixels each.
    assert state["videos"] == [3 * 64, 3 * 64]


def test_cli_options_build_a_config(tmp_path):
    parser = argparse.ArgumentParser()
    add_bench_command(parser.add_subparsers())
    args = parser.parse_args(["bench", str(tmp_path), "--codecs", "cpsgd,x265", "--bpp", "0.002,0.004",
                              "--frames", "10", "--size", "256", "-o", str(tmp_path / "r")])
    config = config_from_args(args)
    assert config.codecs == ("cpsgd", "x265") and config.targets == (0.002, 0.004)
    assert config.protocol == Protocol(10, 256)
    assert config.scales == (256, 192, 128, 96, 80, 64)  # downscaled from --size, never upscaled
    args.scales = (512, 128)
    with pytest.raises(InputError, match="--scales"):
        config_from_args(args)
    args.scales = None
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", str(tmp_path), "--codecs", "vp9", "-o", "r"])
    args.lpips_weights = (tmp_path / "missing.pth",)
    with pytest.raises(InputError):
        config_from_args(args)


def test_without_torch_vmaf_is_left_out_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "vmaf_torch", None)
    parser = argparse.ArgumentParser()
    add_bench_command(parser.add_subparsers())
    args = parser.parse_args(["bench", str(tmp_path), "-o", str(tmp_path / "r")])
    metrics = config_from_args(args).metrics
    assert "vmaf" not in metrics and {"psnr", "ms_ssim_rgb", "disocclusion", "temporal"} <= set(metrics)
    assert "poses" not in metrics and "masks" not in metrics  # slow: asked for by name
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "vmaf" in note[0] and "pip install 'cpsgd[bench]'" in note[0]
    for asked in (["--metrics", "psnr,vmaf"], ["--metrics", "all"]):
        args = parser.parse_args(["bench", str(tmp_path), "-o", str(tmp_path / "r"), *asked])
        with pytest.raises(InputError, match="vmaf needs torch"):
            config_from_args(args)


def test_bench_runs_in_a_process_without_torch(tmp_path):
    """The plain install (no bench extra): exit 0, a one-line note, no traceback."""
    data = make_davis(tmp_path / "davis", ("s",), frames=3)
    # A finder that refuses torch, as an environment without it does (sys.modules[...] = None
    # would also break SciPy's array-API checks, which a real plain install does not).
    code = ("import importlib.abc, sys\n"
            "class NoTorch(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'vmaf_torch'):\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "from cpsgd.cli import main\n"
            f"sys.exit(main(['bench', {str(data)!r}, '-o', {str(tmp_path / 'r')!r}, '--codecs', 'hold,x264', "
            "'--frames', '3', '--size', '64', '--scales', '32', '--bpp', '0.05', '--no-videos']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and (tmp_path / "r" / "index.html").exists()
    assert "vmaf left out" in done.stderr and "points to code and score, about" in done.stderr
    assert "vmaf" not in json.loads((tmp_path / "r" / "results.jsonl").read_text().splitlines()[0])["metrics"]
