"""``ds2 bench``: the machinery with a tiny model in every row (one timed step each)."""

from __future__ import annotations

import json

import pytest

from conftest import tiny_config
from deepspeech2 import bench
from deepspeech2.backends.torch.model import DeepSpeech2


def test_epoch_model_is_shaped_like_train_clean_100():
    d = bench.librispeech100_durations()
    assert len(d) == 28_539
    assert d.sum() / 3600 == pytest.approx(100.6, rel=1e-3)
    assert d.mean() == pytest.approx(12.7, abs=0.05)
    assert 0.5 < ((d > 10) & (d < 16)).mean() < 0.8
    assert 20 < d.max() <= 24.5 and d.min() >= 1.0


def test_flops_count_the_convolutions_and_twice_the_rnn_and_fc_weights_per_frame():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    cfg = tiny_config()
    frames = 301
    model = DeepSpeech2(cfg.model, 161, 29)
    with FlopCounterMode(display=False) as counter:  # torch's own count for the convolutions
        model.conv(torch.zeros(1, 1, 161, frames), torch.tensor([frames]))
    weights = sum(p.numel() for n, p in model.rnns.named_parameters() if n.rsplit(".", 1)[-1].startswith("weight_"))
    weights += model.fc.weight.numel()
    expected = counter.get_total_flops() + 2 * weights * cfg.model.output_frames(frames)
    assert bench.forward_flops(cfg.model, frames) == pytest.approx(expected, rel=1e-9)


def test_rows_are_selected_by_name_or_glob():
    assert bench.select_rows("torch-mini, infer-*") == ["torch-mini", "infer-torch-eager", "infer-onnxruntime",
                                                       "infer-int8-dynamic", "infer-onnxruntime-int8"]
    assert bench.select_rows(None)[0] == "mindspore-course-b1"
    with pytest.raises(ValueError, match="no row matches torch-nope"):
        bench.select_rows("torch-nope")


def test_bench_writes_table_json_and_png_and_reports_failures(tmp_path, monkeypatch):
    def broken(b):
        raise RuntimeError("boom: out of memory")

    monkeypatch.setitem(bench.rows.TRAINING_ROWS, "torch-gru", broken)
    (tmp_path / "wer.json").write_text(json.dumps({"torch-mini": 0.25}))
    rows = ["mindspore-course-b1", "torch-official-b20", "torch-+feature-cache", "torch-bf16", "torch-gru",
            "torch-mini", "infer-torch-eager", "infer-int8-dynamic", "infer-onnxruntime-int8"]
    if bench.mindspore_available():
        rows.remove("mindspore-course-b1")  # MindSpore's own tests cover its backend; keep this one quick
    report = bench.run_bench(tmp_path / "out", quick=True, rows=rows, threads=1, wer_json=tmp_path / "wer.json",
                             tiny=True, log=lambda line: None)

    for name in ("bench.md", "bench.json", "bench.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert (tmp_path / "out" / "bench.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["machine"]["matmul_fp32_gflops"] > 0
    by_name = {r["name"]: r for r in saved["training"] + saved["inference"]}
    assert list(by_name) == rows
    for name in ("torch-official-b20", "torch-+feature-cache", "torch-bf16", "torch-mini"):
        row = by_name[name]
        assert row["status"] == "ok", row
        assert row["audio_per_s"] > 0 and row["epoch_hours"] > 0 and row["gflops"] > 0
        # The speed-up is the row's throughput over the first row that ran (the official size).
        assert row["speedup"] == pytest.approx(row["audio_per_s"] / by_name["torch-official-b20"]["audio_per_s"])
        # Throughput and epoch time are one projection: epoch audio / epoch seconds.
        assert row["audio_per_s"] * row["epoch_hours"] * 3600 == pytest.approx(
            by_name["torch-official-b20"]["audio_per_s"] * by_name["torch-official-b20"]["epoch_hours"] * 3600)
    for name in ("infer-torch-eager", "infer-int8-dynamic", "infer-onnxruntime-int8"):
        assert by_name[name]["status"] == "ok" and 0 < by_name[name]["rtf"]
        assert by_name[name]["speedup"] == pytest.approx(by_name["infer-torch-eager"]["rtf"] / by_name[name]["rtf"])
    assert by_name["torch-gru"]["speedup"] is None
    failed = by_name["torch-gru"]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom: out of memory"
    assert by_name["torch-mini"]["wer"] == 0.25
    if "mindspore-course-b1" in by_name:
        assert by_name["mindspore-course-b1"]["status"] == "not run"

    table = (tmp_path / "out" / "bench.md").read_text()
    assert "| torch-mini |" in table and "25.0 %" in table and "not measured" in table
    assert "failed: RuntimeError: boom: out of memory" in table
    if "mindspore-course-b1" in by_name:
        assert "not run: MindSpore not installed (pip install 'deepspeech2[mindspore]')" in table
    assert report["ladder"]["data_path"] is True
    targets = table.split("## Targets")[1]
    assert "- Official size, PyTorch:" in targets and "(targets ≥ 13 audio s/s: " in targets
    assert "Fastest configuration: torch-mini" in targets and "RTF" in targets


def test_speedups_are_ratios_to_the_first_row_that_ran():
    train = [bench.RowResult("a", "a", status="failed"), bench.RowResult("b", "b", audio_per_s=10.0),
             bench.RowResult("c", "c", audio_per_s=25.0), bench.RowResult("d", "d", status="not run"),
             bench.RowResult("e", "e", audio_per_s=5.0)]
    infer = [bench.RowResult("f", "f", kind="infer", rtf=0.2), bench.RowResult("g", "g", kind="infer", rtf=0.05),
             bench.RowResult("h", "h", kind="infer", rtf=0.5)]
    bench.add_speedups(train)
    bench.add_speedups(infer)
    assert [r.speedup for r in train] == [None, 1.0, 2.5, None, 0.5]
    assert [r.speedup for r in infer] == [1.0, pytest.approx(4.0), pytest.approx(0.4)]  # 1 / RTF: lower is faster


def test_ddp_row_times_two_torchrun_processes(tmp_path):
    report = bench.run_bench(tmp_path, quick=True, rows="torch-ddp2", threads=2, tiny=True, log=lambda line: None)
    (row,) = report["training"]
    assert row["status"] == "ok", row["error"]
    assert row["batch"] == 20 and row["audio_per_s"] > 0 and row["details"]["processes"] == 2


def test_quick_leaves_slow_rows_out_unless_named(tmp_path, monkeypatch):
    def must_not_run(b):
        raise AssertionError("--quick ran a full-run-only row")

    monkeypatch.setattr(bench.rows, "TRAINING_ROWS", {"torch-official-b20": bench.rows.row_torch_official_b20,
                                                 "torch-packed-masks": must_not_run})
    monkeypatch.setattr(bench.rows, "INFERENCE_ROWS", {"infer-torch-eager": bench.rows.row_infer_torch_eager})
    report = bench.run_bench(tmp_path / "all", quick=True, threads=1, tiny=True, log=lambda line: None)
    left_out = {r["name"]: r for r in report["training"]}["torch-packed-masks"]
    assert left_out["status"] == "not run"
    assert "ds2 bench --quick --rows torch-packed-masks" in left_out["note"]
    assert "torch-packed-masks | padding masks via packed sequences" in (tmp_path / "all" / "bench.md").read_text()

    monkeypatch.setitem(bench.rows.TRAINING_ROWS, "torch-packed-masks", bench.rows.row_torch_packed_masks)
    report = bench.run_bench(tmp_path / "named", quick=True, rows="torch-packed-masks", threads=1, tiny=True,
                             log=lambda line: None)
    (named,) = report["training"]
    assert named["status"] == "ok" and named["audio_per_s"] > 0


def test_bad_wer_json_is_an_error(tmp_path):
    (tmp_path / "wer.json").write_text('{"torch-mini": "low"}')
    with pytest.raises(ValueError, match="row name -> WER fraction"):
        bench.read_wer(tmp_path / "wer.json")


def _row(name: str, audio_per_s: float, epoch_hours: float, wer: float | None = None) -> dict:
    return {"name": name, "setup": name, "audio_per_s": audio_per_s, "epoch_hours": epoch_hours, "gflops": 300.0,
            "wer": wer, "status": "ok", "details": {}}


@pytest.mark.parametrize(("mini_wer", "mini_hours", "verdict"),
                         [(0.12, 0.9, "met"), (0.13, 0.9, "met"), (0.135, 0.9, "not met"), (0.12, 1.2, "not met")])
def test_targets_judge_the_fastest_row_by_its_wer_against_the_official_size(mini_wer, mini_hours, verdict):
    report = {"machine": {"matmul_fp32_gflops": 180.0, "matmul_bf16_gflops": 700.0},
              "training": [_row("mindspore-course-b1", 0.5, 200.0), _row("mindspore-official-b1", 2.0, 50.0),
                           _row("torch-masks", 11.0, 9.1, wer=0.11),
                           _row("torch-mini", 110.0, mini_hours, wer=mini_wer)],
              "inference": []}
    lines = bench.targets_report(report)
    official = next(line for line in lines if line.startswith("- Official size"))
    assert "×22.0 mindspore-course-b1" in official  # the course's row, not our MindSpore backend's
    assert "≥ 13 audio s/s: not met; ×20: met" in official
    assert "13 audio s/s needs 355 GFLOP/s" in official and "×20 needs" not in official  # 300 GFLOP/s / 11
    fastest = next(line for line in lines if line.startswith("- Fastest configuration"))
    assert fastest.endswith(f": {verdict}.") and f"WER {100 * mini_wer:.1f} %" in fastest
    assert f"vs 11.0 % at the official size ({100 * (mini_wer - 0.11):+.1f} points)" in fastest


@pytest.mark.parametrize(("rtf", "printed", "verdict"),
                         [(0.0500862, "RTF 0.0501", "not met"), (0.05, "RTF 0.0500", "met"),
                          (0.044, "RTF 0.0440", "met")])
def test_rtf_target_prints_enough_digits_to_show_its_verdict(rtf, printed, verdict):
    infer = {"name": "infer-int8-dynamic", "setup": "int8", "rtf": rtf, "gflops": 190.0, "status": "ok",
             "kind": "infer", "details": {}}
    report = {"machine": {"matmul_fp32_gflops": 180.0, "matmul_bf16_gflops": 700.0}, "training": [],
              "inference": [infer]}
    (line,) = [line for line in bench.targets_report(report) if line.startswith("- Inference")]
    assert f"{printed} (infer-int8-dynamic, target ≤ 0.05): {verdict}" in line
