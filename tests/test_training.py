"""End to end on a tiny model: training learns, resumes exactly, exports and transcribes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import tiny_config
from deepspeech2.backends.torch.engine import load_checkpoint_file
from deepspeech2.cli import main as ds2
from deepspeech2.config import ConfigError
from deepspeech2.data.manifest import Utterance, read_manifest, write_manifest
from deepspeech2.metrics import char_edits
from deepspeech2.train import train


@pytest.fixture(scope="module")
def trained_run(tiny_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config(tiny_corpus["train"], tiny_corpus["dev"], out / "features", epochs=6)
    train(cfg, out)
    return out


def test_loss_falls_and_run_files_are_written(trained_run):
    steps = list(csv.DictReader(open(trained_run / "steps.csv")))
    losses = [float(r["loss"]) for r in steps]
    assert len(losses) == 6 * 12
    assert np.mean(losses[-12:]) < 0.5 * np.mean(losses[:12])
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4, 5, 6]
    assert all(0 <= m["dev_wer"] <= 1.5 for m in metrics)
    assert (trained_run / "training.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("last.pt", "best.pt", "DeepSpeech-6_12.pt", "config.yaml", "metrics.csv"):
        assert (trained_run / name).exists(), name
    ckpt = load_checkpoint_file(trained_run / "last.pt")
    assert ckpt["config"]["model"]["rnn_hidden"] == 48
    assert ckpt["progress"]["epoch"] == 6 and ckpt["progress"]["global_step"] == 72


def test_resuming_with_other_features_is_refused_and_names_them(trained_run, tiny_corpus):
    # e.g. a run folder of the english recipe from before it moved to log-mel features
    cfg = tiny_config(tiny_corpus["train"], tiny_corpus["dev"], trained_run / "features", epochs=7)
    cfg.audio.n_fft, cfg.audio.n_mels = 512, 40
    saved = (trained_run / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"audio.n_fft 320 -> 512; audio.n_mels 0 -> 40\). Resume it with its "
                                          r"own settings \(audio.n_fft=320 audio.n_mels=0"):
        train(cfg, trained_run, resume=True)
    assert (trained_run / "config.yaml").read_text() == saved


def test_checkpoints_are_pruned_to_keep_newest(tiny_corpus, tmp_path):
    cfg = tiny_config(tiny_corpus["train"], "", tmp_path / "features", epochs=3, keep_checkpoints=2,
                      checkpoint_every=5)
    train(cfg, tmp_path / "run")
    numbered = sorted(p.name for p in (tmp_path / "run").glob("DeepSpeech-*.pt"))
    assert numbered == ["DeepSpeech-3_11.pt", "DeepSpeech-3_12.pt"]


def _weights(path: Path) -> dict:
    return load_checkpoint_file(path)["model"]


def test_onnx_export_matches_and_transcribes_like_pytorch(trained_run, tiny_corpus, tmp_path, capsys):
    onnx_path = tmp_path / "model.onnx"
    assert ds2(["export", "--checkpoint", str(trained_run / "best.pt"), "--out", str(onnx_path),
                "--manifest", str(tiny_corpus["dev"])]) == 0
    out = capsys.readouterr().out
    diff = float(out.split("max abs difference to the checkpoint's output ")[1].split()[0])
    assert diff < 1e-4
    dev = read_manifest(tiny_corpus["dev"])[:8]
    files = [u.path for u in dev]
    assert ds2(["transcribe", *files, "--checkpoint", str(trained_run / "best.pt"), "--engine", "fp32"]) == 0
    by_torch = capsys.readouterr().out
    assert ds2(["transcribe", *files, "--onnx", str(onnx_path)]) == 0
    by_onnx = capsys.readouterr().out
    assert by_torch == by_onnx
    # What it says, not just that it ran: "path<TAB>text" per file, the digits mostly right
    # (character error rate 3 % on FSDD, 19 % on the synthesized stand-in after these 6 epochs).
    lines = [line.split("\t") for line in by_onnx.splitlines()]
    assert [path for path, _ in lines] == files and all(text for _, text in lines)
    edits, chars = np.sum([char_edits(u.text, text) for u, (_, text) in zip(dev, lines, strict=True)], axis=0)
    assert edits / chars < 0.3, by_onnx
    assert ds2(["transcribe", files[0], "--onnx", str(onnx_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["duration"] > 0 and all(0 <= w["start"] < w["end"] <= result["duration"] + 0.05
                                          for w in result["words"])


def test_int8_engine_is_the_default_for_checkpoints_and_costs_little(trained_run, tiny_corpus, tmp_path, capsys):
    from deepspeech2.transcribe import Transcriber

    assert Transcriber.from_checkpoint(trained_run / "best.pt").engine == "torch-int8"
    assert Transcriber.from_checkpoint(trained_run / "best.pt", engine="fp32").engine == "torch"
    with pytest.raises(ValueError, match="engine 'fast'"):
        Transcriber.from_checkpoint(trained_run / "best.pt", engine="fast")
    wer = {}
    for flags in ([], ["--int8"]):
        out = tmp_path / f"eval{len(flags)}"
        assert ds2(["eval", "--checkpoint", str(trained_run / "best.pt"), "--manifest", str(tiny_corpus["dev"]),
                    "--out", str(out), "--quiet", *flags]) == 0
        wer[bool(flags)] = json.loads((out / "results.json").read_text())["wer"]
    assert wer[True] <= wer[False] + 0.1, wer


def test_eval_onnx_scores_fp32_and_int8_exports(trained_run, tiny_corpus, tmp_path, capsys):
    import onnx

    from deepspeech2.transcribe import Transcriber

    dev = str(tiny_corpus["dev"])
    paths = {flags: tmp_path / f"m{len(flags)}.onnx" for flags in ((), ("--int8",))}
    for flags, path in paths.items():
        assert ds2(["export", "--checkpoint", str(trained_run / "best.pt"), "--out", str(path), "--manifest", dev,
                    *flags]) == 0
    assert ", int8); checked on" in capsys.readouterr().out
    fp32, int8 = paths[()], paths[("--int8",)]
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(int8)).graph.node}  # this model's GRUs stay fp32
    assert Transcriber.from_onnx(fp32).engine == "onnxruntime"
    assert Transcriber.from_onnx(int8).engine == "onnxruntime-int8"

    def evaluate(*args: str) -> tuple[float, list[str]]:
        out = tmp_path / f"eval{len(list(tmp_path.glob('eval*')))}"
        assert ds2(["eval", *args, "--manifest", dev, "--out", str(out), "--quiet"]) == 0
        hyps = [json.loads(line)["hyp"] for line in open(out / "utterances.jsonl")]
        return json.loads((out / "results.json").read_text())["wer"], hyps

    by_checkpoint = evaluate("--checkpoint", str(trained_run / "best.pt"))
    assert evaluate("--onnx", str(fp32)) == by_checkpoint  # the same model, the same hypotheses
    assert evaluate("--onnx", str(int8))[0] <= by_checkpoint[0] + 0.1
    with pytest.raises(SystemExit, match="exactly one of --checkpoint C, --onnx M or --model NAME"):
        ds2(["eval", "--manifest", dev])
    with pytest.raises(SystemExit, match="--int8 and --backend are for --checkpoint"):
        ds2(["eval", "--onnx", str(fp32), "--manifest", dev, "--int8"])
    assert ds2(["eval", "--onnx", str(tmp_path / "missing.onnx"), "--manifest", dev]) == 2
    assert "missing.onnx: no such ONNX model" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="int8 quantization is for --format onnx, not mindir"):
        ds2(["export", "--checkpoint", str(trained_run / "best.pt"), "--out", str(tmp_path / "m.mindir"),
             "--format", "mindir", "--int8"])


def test_int8_onnx_export_quantizes_the_lstms(tmp_path):
    import onnx

    from deepspeech2.backends.torch.export import export_onnx
    from deepspeech2.backends.torch.model import DeepSpeech2
    from deepspeech2.data.dataset import Batch

    cfg = tiny_config()
    cfg.model.rnn_type = "lstm"
    model = DeepSpeech2(cfg.model, 161, 29).eval()
    rng = np.random.default_rng(0)
    batch = Batch(rng.standard_normal((3, 161, 90)).astype(np.float32), np.array([90, 61, 40]),
                  np.zeros((3, 1), np.int64), np.ones(3, np.int64), [""] * 3, [""] * 3)
    report = export_onnx(model, tmp_path / "m.onnx", batch, {"note": "kept"}, int8=True)
    fp32 = export_onnx(model, tmp_path / "fp32" / "m.onnx", batch)
    assert report["bytes"] < 0.5 * fp32["bytes"]
    proto = onnx.load(report["path"])
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= {n.op_type for n in proto.graph.node}
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata["note"] == "kept" and metadata["deepspeech2_quantization"] == "int8-dynamic"
    assert report["quantization"] == "int8-dynamic" and 0 < report["max_abs_diff"] < 0.05
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp32", "m.onnx"]  # no temporary file left


def test_onnx_transcription_needs_no_torch(trained_run, tiny_corpus, tmp_path):
    onnx_path = tmp_path / "m.onnx"
    ds2(["export", "--checkpoint", str(trained_run / "best.pt"), "--out", str(onnx_path),
         "--manifest", str(tiny_corpus["dev"])])
    wav = read_manifest(tiny_corpus["dev"])[0].path
    script = ("import sys; sys.modules['torch'] = None\n"
              "from deepspeech2.transcribe import Transcriber\n"
              f"print(Transcriber.from_onnx({str(onnx_path)!r}).transcribe({wav!r})['text'])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_evaluation_writes_results(trained_run, tiny_corpus, tmp_path, capsys):
    assert ds2(["eval", "--checkpoint", str(trained_run / "best.pt"), "--manifest", str(tiny_corpus["dev"]),
                "--out", str(tmp_path / "eval"), "--cache-dir", str(tmp_path / "features")]) == 0
    out = capsys.readouterr().out
    assert out.count("Ref: ") == 24 and out.count("Hyp: ") == 24 and "WER: " in out and "CER: " in out
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["num_utterances"] == 24 and results["num_words"] == 24
    rows = [json.loads(line) for line in open(tmp_path / "eval" / "utterances.jsonl")]
    assert len(rows) == 24
    # The corpus WER is word edits over reference words, from the per-utterance rows.
    assert results["wer"] == pytest.approx(sum(r["wer"] for r in rows) / 24)


def test_bad_utterances_are_skipped_and_reported(tiny_corpus, tmp_path):
    good = read_manifest(tiny_corpus["train"])[:16]
    sf.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 6, dtype=np.float32), 16000)
    bad = [Utterance(str(tmp_path / "empty.wav"), "ZERO", 0.5),
           Utterance(str(tmp_path / "broken.wav"), "ZERO", 0.5),
           Utterance(str(tmp_path / "missing.wav"), "ZERO", 0.5),
           Utterance(good[0].path, "", good[0].duration),
           Utterance(good[1].path, "ZERO @ HOME", good[1].duration),
           Utterance(str(tmp_path / "long.wav"), "ZERO", 6.0),
           Utterance(good[2].path, "THIS TRANSCRIPT IS FAR TOO LONG FOR SO SHORT A RECORDING OF A DIGIT",
                     good[2].duration)]
    manifest = write_manifest(tmp_path / "train.jsonl", good[:8] + bad + good[8:])
    manifest.write_text("\n\n" + manifest.read_text())  # blank lines: the report names file lines
    cfg = tiny_config(manifest, "", tmp_path / "features", epochs=1)
    cfg.data.max_duration = 5.0
    train(cfg, tmp_path / "run")
    report = [json.loads(line) for line in open(tmp_path / "run" / "skipped.jsonl")]
    assert [r["line"] for r in report] == [14, 15, 16, 11, 12, 13, 17]  # text checks first, then audio
    reasons = {Path(r["path"]).name + str(r["line"]): r["reason"] for r in report}
    assert any("empty transcript" in v for v in reasons.values())
    assert any("'@'" in v for v in reasons.values())
    assert any("longer than data.max_duration" in v for v in reasons.values())
    assert any("audio file is empty" in v for k, v in reasons.items() if "empty.wav" in k)
    assert any("cannot decode" in v for k, v in reasons.items() if "broken.wav" in k)
    assert any("not found" in v for k, v in reasons.items() if "missing.wav" in k)
    assert any("too short for its transcript" in v for v in reasons.values())
    assert load_checkpoint_file(tmp_path / "run" / "last.pt")["progress"]["global_step"] == 2


def test_long_files_are_transcribed_in_chunks(trained_run, tiny_corpus, tmp_path, capsys):
    from deepspeech2.audio import load_audio

    pieces = []
    for utt in read_manifest(tiny_corpus["dev"])[:6]:
        pieces += [load_audio(utt.path), np.zeros(4000, dtype=np.float32)]
    long = np.concatenate(pieces)
    sf.write(tmp_path / "long.wav", long, 16000)
    assert ds2(["transcribe", str(tmp_path / "long.wav"), "--checkpoint", str(trained_run / "best.pt"),
                "--json", "--chunk-seconds", "1.0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["duration"] == pytest.approx(len(long) / 16000, abs=1e-3)
    starts = [w["start"] for w in result["words"]]
    assert len(starts) >= 3 and starts == sorted(starts)
    assert starts[-1] > 1.0  # later chunks' times are offset by the chunk start


def test_fine_tune_from_pretrained_with_frozen_layers(trained_run, tiny_corpus, tmp_path):
    """--pretrained loads the weights; train.freeze keeps the named layers fixed, also across a resume."""
    cfg = tiny_config(tiny_corpus["train"], "", tmp_path / "features", epochs=2, max_steps=4, freeze=["conv."])
    out = tmp_path / "tuned"
    train(cfg, out, pretrained=str(trained_run / "best.pt"))
    cfg.train.max_steps = 0
    train(cfg, out, resume=True)
    before, after = _weights(trained_run / "best.pt"), _weights(out / "last.pt")
    assert load_checkpoint_file(out / "last.pt")["progress"]["global_step"] == 24
    for name in before:
        if name.startswith("conv.") and "running" not in name and "num_batches" not in name:
            assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["rnns.0.rnn.weight_ih_l0"], after["rnns.0.rnn.weight_ih_l0"])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])


def test_a_log_mel_model_trains_exports_and_transcribes(tiny_corpus, tmp_path, capsys):
    # audio.n_mels reaches every stage: the network's input height, the feature cache, the
    # checkpoint's config and the ONNX export that transcribes without it.
    cfg = tiny_config(tiny_corpus["train"], tiny_corpus["dev"], tmp_path / "features", epochs=4)
    cfg.audio.n_fft, cfg.audio.n_mels = 512, 40
    run = tmp_path / "run"
    train(cfg, run)
    losses = [float(r["loss"]) for r in csv.DictReader(open(run / "steps.csv"))]
    assert np.mean(losses[-12:]) < 0.6 * np.mean(losses[:12])
    assert load_checkpoint_file(run / "best.pt")["config"]["audio"]["n_mels"] == 40
    onnx_path = tmp_path / "model.onnx"
    assert ds2(["export", "--checkpoint", str(run / "best.pt"), "--out", str(onnx_path),
                "--manifest", str(tiny_corpus["dev"])]) == 0
    diff = float(capsys.readouterr().out.split("max abs difference to the checkpoint's output ")[1].split()[0])
    assert diff < 1e-4
    files = [u.path for u in read_manifest(tiny_corpus["dev"])[:4]]
    assert ds2(["transcribe", *files, "--checkpoint", str(run / "best.pt"), "--engine", "fp32"]) == 0
    by_torch = capsys.readouterr().out
    assert ds2(["transcribe", *files, "--onnx", str(onnx_path)]) == 0
    assert capsys.readouterr().out == by_torch
