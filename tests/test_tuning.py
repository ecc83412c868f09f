"""``ds2 lm tune``: the search finds known optima; checkpoint and ONNX paths decode alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from deepspeech2.cli import main as ds2
from deepspeech2.decoding import DecoderConfig, load_decoder_config
from deepspeech2.lm import build_lm
from deepspeech2.text import Alphabet
from deepspeech2.tuning import grid_points, random_points, search, tune, write_tuning


def _bowl(point: tuple[float, float]) -> dict:
    """A WER surface with its minimum at alpha 0.75, beta 1 (module level: worker processes pickle it)."""
    alpha, beta = point
    return {"alpha": alpha, "beta": beta, "wer": (alpha - 0.75) ** 2 + 0.1 * (beta - 1) ** 2, "cer": 0.0}


def test_grid_and_random_search_find_the_known_optimum():
    grid = grid_points([0, 0.25, 0.5, 0.75, 1.0, 1.5], [-1, 0, 1, 2])
    rows = search(_bowl, grid, jobs=2, progress=False)
    assert (rows[0]["alpha"], rows[0]["beta"]) == (0.75, 1.0) and len(rows) == 24
    assert search(_bowl, grid, jobs=1, progress=False) == rows
    points = random_points(200, (0, 2), (-1, 3), seed=0)
    best = search(_bowl, points, jobs=2, progress=False)[0]
    assert abs(best["alpha"] - 0.75) < 0.1 and abs(best["beta"] - 1) < 0.4


def spoken(text: str, alphabet: Alphabet, rng: np.random.Generator, ties: dict[int, str]) -> np.ndarray:
    """Peaked log-probs of ``text`` (3 frames a character, then a blank); at the characters
    numbered in ``ties`` the acoustics prefer the given wrong letter by a hair."""
    frames = []
    for i, char in enumerate(text):
        for _ in range(3):
            row = rng.normal(0, 0.3, len(alphabet))
            row[alphabet.encode(char)[0]] += 9
            if i in ties:
                row[alphabet.encode(char)[0]] -= 9 - np.log(0.45 / 0.01)
                row[alphabet.encode(ties[i])[0]] += np.log(0.5 / 0.01)
            frames.append(row)
        blank = rng.normal(0, 0.3, len(alphabet))
        blank[alphabet.blank_id] += 9
        frames.append(blank)
    x = np.array(frames)
    x -= x.max(axis=1, keepdims=True)
    return (x - np.log(np.exp(x).sum(axis=1, keepdims=True))).astype(np.float32)


def test_tuning_finds_that_the_lm_fixes_acoustic_ties(tmp_path):
    alphabet = Alphabet("last")
    text = tmp_path / "lm.txt"
    text.write_text("\n".join(["THE CAT SAT ON THE MAT", "THE DOG SAT ON THE MAT", "A CAT AND A DOG"] * 4) + "\n")
    lm = build_lm([text], tmp_path / "lm.arpa", order=6, unit="char")["arpa"]
    rng = np.random.default_rng(0)
    references = ["THE CAT SAT", "THE DOG SAT ON THE MAT", "A CAT AND A DOG"]
    ties = [{6: "B"}, {17: "K", 6: "T"}, {4: "R"}]  # CAB, DOT ... MAK, CAR
    log_probs = [spoken(r, alphabet, rng, t) for r, t in zip(references, ties, strict=True)]
    rows = tune(log_probs, references, alphabet, DecoderConfig(type="beam", lm=lm, beam_width=16),
                grid_points([0.0, 0.5, 1.0], [0.0, 1.0]), jobs=2, progress=False)
    by_point = {(r["alpha"], r["beta"]): r["wer"] for r in rows}
    assert by_point[(0.0, 0.0)] > 0.2  # the acoustics alone keep the wrong letters
    assert rows[0]["wer"] == 0.0 and rows[0]["alpha"] > 0
    path = write_tuning(rows, DecoderConfig(type="beam", lm=lm, beam_width=16), tmp_path / "tune",
                        greedy={"wer": by_point[(0.0, 0.0)], "cer": 0.1})
    cfg = load_decoder_config(path)
    assert (cfg.alpha, cfg.beta, cfg.beam_width, Path(cfg.lm)) == (rows[0]["alpha"], rows[0]["beta"], 16,
                                                                    Path(lm).resolve())
    assert (tmp_path / "tune" / "tune.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "tune" / "tune.csv").read_text().splitlines()) == 7


@pytest.fixture(scope="module")
def tiny_model(tiny_corpus, tmp_path_factory):
    """A tiny model trained for a few seconds, its ONNX export and a character LM of the digits."""
    from deepspeech2.export import export_checkpoint
    from deepspeech2.train import train

    out = tmp_path_factory.mktemp("tiny_lm_run")
    cfg = tiny_config(tiny_corpus["train"], tiny_corpus["dev"], out / "features", epochs=3)
    train(cfg, out)
    export_checkpoint(out / "best.pt", out / "model.onnx", "onnx", tiny_corpus["dev"], str(out / "features"))
    text = out / "digits.txt"
    text.write_text("ZERO\nONE\nZERO ONE\nONE ZERO\n")
    lm = build_lm([text], out / "lm.arpa", order=5, unit="char")["arpa"]
    return {"checkpoint": out / "best.pt", "onnx": out / "model.onnx", "lm": lm, "features": out / "features"}


def test_checkpoint_and_onnx_give_the_same_beam_transcripts(tiny_model, tiny_corpus, tmp_path, capsys):
    dev = str(tiny_corpus["dev"])
    for kind in ("checkpoint", "onnx"):
        assert ds2(["eval", f"--{kind}", str(tiny_model[kind]), "--manifest", dev, "--out", str(tmp_path / kind),
                    "--lm", str(tiny_model["lm"]), "--alpha", "0.5", "--beta", "1", "--beam-width", "16",
                    "--cache-dir", str(tiny_model["features"]), "--quiet"]) == 0
    hyps = {kind: [json.loads(line)["hyp"] for line in open(tmp_path / kind / "utterances.jsonl")]
            for kind in ("checkpoint", "onnx")}
    assert hyps["checkpoint"] == hyps["onnx"] and len(hyps["onnx"]) == 24
    saved = json.loads((tmp_path / "onnx" / "results.json").read_text())["decoder"]
    assert (saved["type"], saved["alpha"], saved["beam_width"]) == ("beam", 0.5, 16)
    wav = [line for line in open(tiny_corpus["dev"])][0]
    wav = json.loads(wav)["path"]
    outputs = []
    for kind in ("checkpoint", "onnx"):
        extra = ["--engine", "fp32"] if kind == "checkpoint" else []
        assert ds2(["transcribe", wav, f"--{kind}", str(tiny_model[kind]), "--lm", str(tiny_model["lm"]),
                    "--json", *extra]) == 0
        outputs.append(json.loads(capsys.readouterr().out.splitlines()[-1]))
    assert outputs[0]["text"] == outputs[1]["text"] and outputs[0]["words"] == outputs[1]["words"]


def test_lm_tune_command_caches_log_probs_and_writes_the_decoder(tiny_model, tiny_corpus, tmp_path, capsys):
    args = ["lm", "tune", "--onnx", str(tiny_model["onnx"]), "--manifest", str(tiny_corpus["dev"]),
            "--lm", str(tiny_model["lm"]), "--out", str(tmp_path), "--alphas", "0,0.5", "--betas", "0,1",
            "--beam-width", "8", "--widths", "4,8", "--jobs", "2", "--cache-dir", str(tiny_model["features"])]
    assert ds2(args) == 0
    out = capsys.readouterr().out
    assert "best: alpha" in out and "greedy" in out
    cfg = load_decoder_config(tmp_path / "decoder.yaml")
    assert cfg.type == "beam" and cfg.beam_width in (4, 8) and Path(cfg.lm) == Path(tiny_model["lm"]).resolve()
    assert (tmp_path / "tune.png").exists() and len(json.loads((tmp_path / "tune.json").read_text())["points"]) == 4
    assert ds2(args) == 0
    assert "(cached)" in capsys.readouterr().out
    bad = tmp_path / "bad.txt"
    bad.write_text("not an lm\n")
    assert ds2([*args[:6], "--lm", str(bad), *args[8:]]) == 2
    assert "bad.txt" in capsys.readouterr().err
