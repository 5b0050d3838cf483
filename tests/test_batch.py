"""`cpsgd batch`: a tiny corpus on the local process pool and on a private Ray instance.

The fault-injecting work functions live at module level so that spawned workers can import them
(Ray gets them by value). Each fails only while its marker file is absent, so the retry succeeds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from functools import partial
from pathlib import Path

import pytest
from PIL import Image

from cpsgd.batch import (
    RESULTS_NAME, LocalEngine, Settings, Task, add_batch_command, content_hash, find_items, make_tasks, run_batch,
    run_task,
)
from cpsgd.cli import main as cpsgd_main
from cpsgd.errors import InputError
from cpsgd.pipeline import EncoderConfig
from cpsgd.synth import SceneConfig, make_scene

NAMES = ("clip0", "clip1", "clip2")
# Cheap settings: the stages are not what is tested here.
CLI_OPTIONS = ["--gop", "4", "--pose-estimator", "none", "--segmenter", "none"]
CONFIG = EncoderConfig(gop=4, pose_estimator=None, segmenter=None)
HAS_RAY = importlib.util.find_spec("ray") is not None


def faulty(markers: Path, task: Task) -> dict:
    """clip0 always fails; clip1 fails once; clip2 kills its worker process once."""
    if task.name == "clip0":
        raise RuntimeError("injected permanent failure")
    marker = markers / f"{task.name}.hit"
    if task.name in ("clip1", "clip2") and not marker.exists():
        marker.touch()
        if task.name == "clip2":
            os._exit(3)  # the worker dies without a word, as if killed
        raise RuntimeError("injected failure")
    return run_task(task)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for seed, (name, traj) in enumerate(zip(NAMES, ("pan", "dolly", "orbit"), strict=True)):
        clip = make_scene(SceneConfig(traj=traj, objects=1, num_frames=8, width=64, height=64, seed=seed))
        (root / name).mkdir()
        for i, frame in enumerate(clip.frames):
            Image.fromarray(frame).save(root / name / f"frame_{i:05d}.png")
    return root


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory) -> dict[str, bytes]:
    """What a single-process `cpsgd encode` writes for each clip."""
    out = tmp_path_factory.mktemp("reference")
    streams = {}
    for name in NAMES:
        assert cpsgd_main(["encode", str(corpus / name), "-o", str(out / f"{name}.cpsgd"), "-q", *CLI_OPTIONS]) == 0
        streams[name] = (out / f"{name}.cpsgd").read_bytes()
    return streams


def encode_tasks(corpus: Path, outdir: Path) -> list[Task]:
    return make_tasks(find_items(corpus), Settings("encode", encoder=CONFIG), outdir)


def done_rows(outdir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (outdir / RESULTS_NAME).read_text().splitlines()]
    return [row for row in rows if row["status"] == "done"]


def check_outputs(outdir: Path, reference: dict[str, bytes]) -> None:
    for name, stream in reference.items():
        assert (outdir / f"{name}.cpsgd").read_bytes() == stream, name
    assert not list(outdir.glob(".*.partial"))


def batch_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_batch_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args) or 0


# --- inputs ---------------------------------------------------------------------------------------


def test_manifests_name_inputs(corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text(f"path,name\n{corpus / 'clip0'},first\n{corpus / 'clip1'},\n")
    assert [(i.name, i.path) for i in find_items(tmp_path / "list.csv")] == [
        ("first", corpus / "clip0"), ("clip1", corpus / "clip1")
    ]
    (tmp_path / "list.jsonl").write_text(json.dumps({"path": str(corpus / "clip2"), "poses": "p.txt"}) + "\n")
    [item] = find_items(tmp_path / "list.jsonl")
    assert item.name == "clip2" and item.poses == tmp_path / "p.txt"
    assert [i.name for i in find_items(corpus)] == list(NAMES)
    (tmp_path / "twice.csv").write_text(f"path,name\n{corpus / 'clip0'},a\n{corpus / 'clip1'},a\n")
    with pytest.raises(InputError, match="several inputs"):
        find_items(tmp_path / "twice.csv")
    with pytest.raises(InputError, match="no .cpsgd"):
        find_items(corpus, streams=True)


# --- local engine ---------------------------------------------------------------------------------


def test_local_encode_matches_cli_and_resumes(corpus: Path, reference: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert batch_cli(["batch", "encode", str(corpus), "-o", str(out), "--workers", "2", "-q", *CLI_OPTIONS]) == 0
    check_outputs(out, reference)
    rows = done_rows(out)
    assert sorted(r["name"] for r in rows) == list(NAMES)
    assert all(r["bits"] == 8 * len(reference[r["name"]]) and r["frames"] == 8 for r in rows)

    # A rerun redoes only the output that no longer has its recorded hash.
    (out / "clip1.cpsgd").write_bytes(b"damaged")
    with LocalEngine(2) as engine:
        summary = run_batch(encode_tasks(corpus, out), engine, out, progress=False)
    assert sorted(summary.skipped) == ["clip0", "clip2"] and [r["name"] for r in summary.done] == ["clip1"]
    check_outputs(out, reference)


def check_faults(summary, out: Path, markers: Path, reference: dict) -> dict[str, int]:
    """The permanent failure is reported after its retries; the others are all finished, each
    recorded once (a result that finished before the crash was kept, not redone)."""
    assert (markers / "clip1.hit").exists() and (markers / "clip2.hit").exists()
    [failed] = summary.failed
    assert failed["name"] == "clip0" and failed["attempts"] == 4 and "injected permanent" in failed["error"]
    assert not (out / "clip0.cpsgd").exists()
    assert sorted(r["name"] for r in done_rows(out)) == ["clip1", "clip2"]
    for name in ("clip1", "clip2"):
        assert (out / f"{name}.cpsgd").read_bytes() == reference[name]
    assert not list(out.glob(".*.partial"))
    return {r["name"]: r["attempts"] for r in summary.done}


def test_local_retries_failures_and_survives_a_killed_worker(corpus: Path, reference: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with LocalEngine(2) as engine:
        summary = run_batch(encode_tasks(corpus, out), engine, out, retries=3, progress=False,
                            work=partial(faulty, tmp_path))
    attempts = check_faults(summary, out, tmp_path, reference)
    # A dead worker breaks the pool: the task running beside it may be charged one extra try.
    assert 2 <= attempts["clip1"] <= 3 and 2 <= attempts["clip2"] <= 3


def test_local_decode_and_bench(corpus: Path, reference: dict, tmp_path: Path) -> None:
    streams = tmp_path / "streams"
    streams.mkdir()
    for name, data in reference.items():
        (streams / f"{name}.cpsgd").write_bytes(data)
    (streams / "broken.cpsgd").write_bytes(b"CPSG not really")
    single = tmp_path / "single"
    assert cpsgd_main(["decode", str(streams / "clip0.cpsgd"), "-o", str(single), "-q"]) == 0

    out = tmp_path / "decoded"
    with pytest.raises(Exception, match="1 of 4 tasks failed"):
        batch_cli(["batch", "decode", str(streams), "-o", str(out), "--workers", "2", "-q"])
    assert content_hash(out / "clip0") == content_hash(single)
    assert len(list((out / "clip2").glob("*.png"))) == 8
    [broken] = [r for r in map(json.loads, (out / RESULTS_NAME).read_text().splitlines()) if r["status"] == "failed"]
    assert broken["name"] == "broken" and broken["attempts"] == 1  # a bitstream error is not retried

    (tmp_path / "one.jsonl").write_text(json.dumps({"path": str(corpus / "clip0")}) + "\n")
    out = tmp_path / "bench"
    assert batch_cli(["batch", "bench", str(tmp_path / "one.jsonl"), "-o", str(out), "--workers", "1", "-q",
                      *CLI_OPTIONS]) == 0
    [row] = done_rows(out)
    assert (out / "clip0.cpsgd").read_bytes() == reference["clip0"]
    assert 5 < row["metrics"]["psnr"] < 60 and 0 < row["metrics"]["ms_ssim"] <= 1


# --- Ray ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_engine():
    if not HAS_RAY:
        pytest.skip("ray is not installed (pip install 'cpsgd[ray]')")
    from cpsgd.batch import RayEngine

    with RayEngine(num_cpus=2) as engine:
        import ray.cloudpickle

        # Workers cannot import this test module: send its fault-injecting functions by value.
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        yield engine
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_ray_listens_on_loopback_only(ray_engine) -> None:
    import ray

    assert ray.util.get_node_ip_address() == "127.0.0.1"
    assert ray.cluster_resources()["CPU"] == 2


def test_ray_encode_matches_single_process(ray_engine, corpus: Path, reference: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run_batch(encode_tasks(corpus, out), ray_engine, out, progress=False)
    assert not summary.failed and len(summary.done) == 3
    check_outputs(out, reference)
    assert len(run_batch(encode_tasks(corpus, out), ray_engine, out, progress=False).skipped) == 3


def test_ray_retries_failures_and_survives_a_killed_worker(ray_engine, corpus: Path, reference: dict,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run_batch(encode_tasks(corpus, out), ray_engine, out, retries=3, progress=False,
                        work=partial(faulty, tmp_path))
    attempts = check_faults(summary, out, tmp_path, reference)
    # Ray may have queued another task on the worker that died: it is charged one extra try.
    assert 2 <= attempts["clip1"] <= 3 and 2 <= attempts["clip2"] <= 3
