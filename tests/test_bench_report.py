"""End to end on a tiny dataset: results, resume, summary, plots, and the HTML report in Chromium."""

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
        metrics=("psnr", "ms_ssim", "vmaf", "masks"),
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
        assert {"psnr", "ms_ssim", "vmaf"} <= set(row["metrics"])
        assert row["protocol"] == {"frames": 4, "size": 64} and "pyav" in row["versions"]
        if row["codec"] in ("hold", "intra"):
            assert sum(row["parts"].values()) == row["bits"] and "intra" in row["parts"]
            assert row["settings"]["target_bpp"] in TARGETS
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
    for metric in ("psnr", "ms_ssim", "vmaf", "mask_j"):
        assert (config.out_dir / f"rd_{metric}.png").read_bytes()[:4] == b"\x89PNG"


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
    assert len(state["images"]) == 4 and all(state["images"])
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
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", str(tmp_path), "--codecs", "vp9", "-o", "r"])
    args.lpips_weights = (tmp_path / "missing.pth",)
    with pytest.raises(InputError):
        config_from_args(args)
