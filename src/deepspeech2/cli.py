"""``ds2``: one subcommand per pipeline stage. Each one parses arguments and calls the
module that does the work."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path


def _overrides_help() -> str:
    return "config overrides as key=value, e.g. train.lr=1e-3 model.rnn_layers=3"


def cmd_data(args: argparse.Namespace) -> None:
    if args.corpus == "mini":
        from .data.mini import build_mini_corpus

        paths = build_mini_corpus(args.out, text_file=args.text, num_train=args.num_train, num_dev=args.num_dev,
                                  num_test=args.num_test, num_test_unseen=args.num_test_unseen, seed=args.seed,
                                  jobs=args.jobs)
        for split, path in paths.items():
            print(f"{split}: {path}")
    elif args.corpus == "fsdd":
        from .data.fsdd import FSDD_URL, build_fsdd_manifests, download_fsdd

        if args.download:
            download_fsdd(args.root, args.url or FSDD_URL)
        build_fsdd_manifests(args.root, args.out)
    elif args.corpus in ("speechocean762", "an4"):
        from .data import an4, speechocean762

        module = speechocean762 if args.corpus == "speechocean762" else an4
        if args.download:
            download = module.download_speechocean762 if module is speechocean762 else module.download_an4
            download(args.root, args.url or module.URL, args.md5)
        build = module.build_speechocean762_manifests if module is speechocean762 else module.build_an4_manifests
        build(args.root, args.out)
    elif args.corpus == "asterisk":
        from .data.asterisk import SOUNDS, TEXTS, build_text_list_manifest

        build_text_list_manifest(args.texts or TEXTS, args.sounds or SOUNDS, Path(args.out) / "asterisk.jsonl",
                                 args.extension)
    elif args.corpus == "librispeech":
        from .data.librispeech import prepare_librispeech

        prepare_librispeech(args.root, args.subsets, args.base_url, args.checksums, args.out, wav=args.wav,
                            formats=args.formats, min_duration=args.min_duration, max_duration=args.max_duration,
                            jobs=args.jobs, download=not args.no_download, delete_archives=args.delete_archives)
    elif args.corpus == "convert":
        from .data.formats import convert

        path, count = convert(args.source, args.dest, args.format, args.txt_dir)
        print(f"{count} utterances -> {path}")
    elif args.corpus == "folder":
        from .data.folder import import_folder

        import_folder(args.source, args.out, args.formats, args.jobs)
    elif args.corpus == "stats":
        from .data.stats import format_stats, manifest_stats, write_stats_json

        stats = manifest_stats(args.manifest, args.png, decode=not args.no_decode, jobs=args.jobs)
        print(format_stats(stats))
        if args.json:
            write_stats_json(stats, args.json)


def launch_distributed(nproc: int, argv: list[str]) -> None:
    """``ds2 train --nproc N …``: rerun this training under torchrun with N processes on this
    machine (gloo on CPU, NCCL on GPUs), splitting the cores between them."""
    import os
    import subprocess

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "deepspeech2", "train", *argv]
    print("launching:", " ".join(cmd[2:]), flush=True)
    raise SystemExit(subprocess.call(cmd, env=env))


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out


def cmd_train(args: argparse.Namespace) -> None:
    import os

    if args.nproc and args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        launch_distributed(args.nproc, _without_nproc(args.argv[1:]))
    from .config import config_path, load_config
    from .train import train

    if args.resume:
        saved = Path(args.resume) / "config.yaml"
        if not saved.exists():
            raise SystemExit(f"--resume {args.resume}: no config.yaml there; is it a run folder?")
        cfg = load_config(saved, args.overrides)
        out = args.resume
    else:
        if not args.config:
            raise SystemExit("ds2 train needs --config (a YAML file or a packaged name: mini, fsdd, "
                             "mindspore_official) or --resume RUN")
        cfg = load_config(config_path(args.config), args.overrides)
        out = args.out or f"runs/{cfg.name}"
    if args.backend:
        cfg.backend = args.backend
    train(cfg, out, resume=bool(args.resume), pretrained=_for_backend(args.pretrained, cfg.backend),
          device=args.device)


def _for_backend(checkpoint: str | None, backend: str | None) -> str | None:
    """``checkpoint``, or when it is the other backend's, a converted temporary copy (as ``ds2 convert``)."""
    if not checkpoint or not backend:
        return checkpoint
    from .checkpoints import as_backend

    return str(as_backend(checkpoint, backend))


def cmd_eval(args: argparse.Namespace) -> None:
    from .evaluate import evaluate_checkpoint, evaluate_onnx

    if sum(map(bool, (args.checkpoint, args.onnx, args.model))) != 1:
        raise SystemExit("ds2 eval needs exactly one of --checkpoint C, --onnx M or --model NAME")
    if args.model:
        args.checkpoint = str(_resolve_model(args.model))
    if args.onnx:
        if args.int8 or args.backend:
            raise SystemExit("ds2 eval --onnx runs the exported model as it is: --int8 and --backend are for "
                             "--checkpoint (export with `ds2 export --int8` for an int8 ONNX model)")
        evaluate_onnx(args.onnx, args.manifest, args.out, args.cache_dir, verbose=not args.quiet,
                      batch_size=args.batch_size, decoder=_decoder_config(args))
        return
    evaluate_checkpoint(_for_backend(args.checkpoint, args.backend), args.manifest, args.out, args.cache_dir,
                        verbose=not args.quiet, batch_size=args.batch_size, int8=args.int8,
                        decoder=_decoder_config(args))


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_checkpoint

    if args.streaming:
        from .serve.streaming import export_streaming

        report = export_streaming(args.checkpoint, args.out, int8=args.int8)
        print(f"exported {report['path']} (streaming, {report['bytes'] / 1e6:.1f} MB{', int8' * args.int8}); "
              f"checked by streaming noise: max abs difference to PyTorch {report['max_abs_diff']:.2e}")
        return
    if args.int8 and args.format != "onnx":
        raise SystemExit(f"ds2 export --int8: int8 quantization is for --format onnx, not {args.format}")
    backend = args.backend or ("mindspore" if args.format == "mindir" else None)  # MindIR is MindSpore's
    report = export_checkpoint(_for_backend(args.checkpoint, backend), args.out, args.format, args.manifest,
                               args.cache_dir, int8=args.int8)
    print(f"exported {report['path']} ({report['bytes'] / 1e6:.1f} MB{', int8' * args.int8}); checked on "
          f"{report['batch']} utterances: max abs difference to the checkpoint's output {report['max_abs_diff']:.2e}")


def cmd_serve(args: argparse.Namespace) -> None:
    from .serve.app import ServeOptions, serve

    model = args.model
    if not Path(model).exists() and "/" not in model and not model.endswith((".onnx", ".pt", ".ckpt")):
        model = str(_resolve_model(model))  # a registry name
    options = ServeOptions(max_upload_bytes=int(args.max_upload_mb * 2**20), max_audio_seconds=args.max_audio_seconds,
                           allow_long=args.allow_long, max_streams=args.max_streams, idle_timeout=args.idle_timeout,
                           workers=args.workers or 0, api_key=args.api_key or os.environ.get("DS2_API_KEY"))
    serve(model, args.host, args.port, options, decoder=args.decoder, engine=args.engine)


def cmd_transcribe(args: argparse.Namespace) -> None:
    from .transcribe import Transcriber

    if sum(map(bool, (args.checkpoint, args.onnx, args.model))) != 1:
        raise SystemExit("ds2 transcribe needs exactly one of --checkpoint C, --onnx M or --model NAME")
    if args.model:
        args.checkpoint = str(_resolve_model(args.model))
    decoder = _decoder_config(args)
    transcriber = (Transcriber.from_onnx(args.onnx, chunk_seconds=args.chunk_seconds, decoder=decoder) if args.onnx
                   else Transcriber.from_checkpoint(_for_backend(args.checkpoint, args.backend),
                                                    chunk_seconds=args.chunk_seconds, engine=args.engine,
                                                    decoder=decoder))
    for path in args.files:
        result = transcriber.transcribe(path)
        if args.json:
            print(json.dumps(result))
        else:
            print(result["text"] if len(args.files) == 1 else f"{path}\t{result['text']}")


def _resolve_model(name_or_path: str) -> Path:
    """``--model``: a registry name (downloaded and converted on first use, saying so on stderr)
    or a checkpoint path."""
    from .registry import resolve_model

    return resolve_model(name_or_path)


def cmd_models(args: argparse.Namespace) -> None:
    from . import registry

    if args.models_command == "list":
        rows = registry.list_models(args.cache_dir)
        print(json.dumps(rows, indent=1) if args.json else registry.format_models(rows), end="\n" * args.json)
    elif args.models_command == "download":
        for name in args.names:
            print(f"{name}: {registry.download_model(name, args.base_url, args.cache_dir)}")
    else:
        name, path = registry.import_model(args.file, args.name, args.cache_dir)
        print(f"{name}: {path}")


def cmd_convert(args: argparse.Namespace) -> None:
    from .backends.torch.deepspeech_pytorch import convert_deepspeech_pytorch, is_torch_file
    from .checkpoints import convert_checkpoint

    source = Path(args.source)
    if source.suffix in (".ckpt", ".pth") and source.is_file() and is_torch_file(source):
        if Path(args.dest).suffix != ".pt":
            raise ValueError(f"{source} is a deepspeech.pytorch checkpoint: convert it to a PyTorch .pt")
        report = convert_deepspeech_pytorch(source, args.dest)
        print(f"{source} ({report['format']}) -> {args.dest} ({report['parameters']:,} parameters)")
        return
    if source.suffix == ".ckpt" and Path(args.dest).suffix == ".pt" and importlib.util.find_spec("mindspore") is None:
        from .backends.mindspore.ckpt_file import convert_to_torch_without_mindspore

        report = convert_to_torch_without_mindspore(source, args.dest)  # read by hand: no MindSpore here
    else:
        report = convert_checkpoint(args.source, args.dest)
    print(f"{report['source']} -> {report['dest']} ({report['parameters']:,} parameters)")


def cmd_run(args: argparse.Namespace) -> None:
    from .recipes import run_recipe

    options: dict = {}
    if args.recipe == "mini" and args.num_train:
        options["num_train"] = args.num_train
    if args.recipe == "english":  # --num-train: synthetic utterances, 2/5 templated and 3/5 prose
        options = {"num_templated": 2 * args.num_train // 5, "num_prose": args.num_train - 2 * args.num_train // 5} \
            if args.num_train else {}
    if args.recipe == "librispeech":
        options = {"subsets": args.subsets, "base_url": args.base_url, "checksums": args.checksums, "wav": args.wav,
                   "jobs": args.jobs, "download": not args.no_download}
    lm_options = {"decoder": _decoder_config(args), "lm_text": args.lm_text, "no_lm": args.no_lm}
    run_recipe(args.recipe, args.out, args.root or args.data, args.overrides, options, args.config, lm_options)


def _floats(value: str) -> list[float]:
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None


def _manifest_texts(manifests: list[str] | None) -> set[str]:
    """Transcripts of manifests whose sentences an LM must not see (dev and test sets)."""
    from .data.formats import read_any_manifest

    return {u.text for m in manifests or [] for u in read_any_manifest(m)}


def cmd_lm(args: argparse.Namespace) -> None:
    if args.lm_command == "build":
        from .lm import build_lm

        r = build_lm(args.text, args.out, order=args.order, prune=args.prune or (), unit=args.unit,
                     exclude=_manifest_texts(args.exclude))
        counts = ", ".join(f"{n}-grams {c:,}" for n, c in r["ngrams"].items())
        print(f"{r['arpa']}: {r['unit']} {r['order']}-gram from {r['sentences']:,} sentences ({r['tokens']:,} "
              f"tokens; {r['skipped_lines']} lines skipped, {r['excluded_lines']} excluded): {counts}")
    elif args.lm_command == "download":
        from .lm import LIBRISPEECH_LM_FILES, download_librispeech_lm

        files = args.files.split(",") if args.files else LIBRISPEECH_LM_FILES
        for name, path in download_librispeech_lm(args.root, files, args.base_url, args.checksums).items():
            print(f"{name}: {path}")
    else:
        from .decoding import load_decoder_config
        from .tuning import tune_model

        if bool(args.checkpoint) == bool(args.onnx):
            raise SystemExit("ds2 lm tune needs exactly one of --checkpoint C or --onnx M")
        base = load_decoder_config(args.decoder) if args.decoder else None
        tune_model(args.manifest, args.lm, args.out, args.checkpoint, args.onnx, args.alphas, args.betas,
                   args.trials, args.beam_width, base, args.jobs, args.cache_dir,
                   widths=[int(w) for w in args.widths])


def cmd_bench(args: argparse.Namespace) -> None:
    from .bench import run_bench

    run_bench(args.out, quick=args.quick, rows=args.rows, threads=args.threads, wer_json=args.wer_json)


def _decoder_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """--decoder FILE or the individual beam-search flags (flags win over the file)."""
    parser.add_argument("--decoder", help=f"{prefix}a decoder.yaml (from `ds2 lm tune`): beam search with its LM")
    parser.add_argument("--lm", help=f"{prefix}beam search with this character LM (ARPA or KenLM binary)")
    parser.add_argument("--alpha", type=float, help="LM weight (with --lm or --decoder)")
    parser.add_argument("--beta", type=float, help="word insertion bonus (with --lm or --decoder)")
    parser.add_argument("--beam-width", type=int, help="beam width (default 64); alone: beam search without an LM")


def _decoder_config(args: argparse.Namespace):
    """The DecoderConfig that --decoder and the flags ask for, or None (greedy)."""
    from .decoding import decoder_config_from_args

    if not any(getattr(args, k, None) is not None for k in ("decoder", "lm", "alpha", "beta", "beam_width")):
        return None
    return decoder_config_from_args(args.decoder, args.lm, args.alpha, args.beta, args.beam_width)


def _librispeech_source_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument("--subsets", help=f"{prefix}comma-separated (default: train-clean-100,dev-clean,dev-other,"
                        "test-clean,test-other; train-960 = the three training sets)")
    parser.add_argument("--base-url", help=f"{prefix}mirror: openslr (default), trmal, elda, or a URL")
    parser.add_argument("--checksums", help=f"{prefix}'md5  name' lines to verify against instead of OpenSLR's")
    parser.add_argument("--wav", action="store_true", help=f"{prefix}convert to 16 kHz WAV (default: keep FLAC)")
    parser.add_argument("--no-download", action="store_true",
                        help=f"{prefix}use archives or extracted folders already under the root")
    parser.add_argument("--jobs", type=int, help=f"{prefix}decoding processes (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ds2", description="DeepSpeech2: prepare, train, evaluate, export, transcribe")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="prepare a corpus: audio and manifests")
    corpora = data.add_subparsers(dest="corpus", required=True)
    mini = corpora.add_parser("mini", help="synthesize the offline multi-speaker mini corpus (Debian TTS)")
    mini.add_argument("out", help="output folder")
    mini.add_argument("--text", help="sentences, one per line (default: the built-in sentence generator)")
    mini.add_argument("--num-train", type=int, default=6000)
    mini.add_argument("--num-dev", type=int, default=200)
    mini.add_argument("--num-test", type=int, default=200)
    mini.add_argument("--num-test-unseen", type=int, default=200)
    mini.add_argument("--seed", type=int, default=0)
    mini.add_argument("--jobs", type=int, default=None, help="parallel synthesis processes (default: all cores)")
    fsdd = corpora.add_parser("fsdd", help="manifests for a local copy of the Free Spoken Digit Dataset")
    fsdd.add_argument("--root", required=True, help="the dataset folder (with recordings/)")
    fsdd.add_argument("--out", required=True, help="where the manifests go")
    fsdd.add_argument("--download", action="store_true",
                      help="first fetch the recordings from the dataset's GitHub repository into --root")
    fsdd.add_argument("--url", help="archive to download instead of the repository's (a mirror, a test server)")

    for name, what in (("speechocean762", "speechocean762 (OpenSLR 101: 5,000 read sentences, 250 non-native "
                                          "speakers)"),
                       ("an4", "CMU AN4 (948 + 130 census-style utterances, 84 speakers)")):
        real = corpora.add_parser(name, help=f"train/dev/test manifests for a local copy of {what}")
        real.add_argument("--root", required=True, help="the corpus folder (a compact copy with manifest.csv, "
                                                        "or the published layout)")
        real.add_argument("--out", required=True, help="where the manifests go")
        real.add_argument("--download", action="store_true", help="first fetch the published archive into --root")
        real.add_argument("--url", help="archive to download instead of the public one (a mirror, a test server)")
        real.add_argument("--md5", help="expected MD5 of the archive")
    ast = corpora.add_parser("asterisk", help="an evaluation manifest of the installed Asterisk English prompts "
                                              "(or any 'name: text' list with its audio folder)")
    ast.add_argument("--out", required=True, help="folder for asterisk.jsonl and asterisk.dropped.jsonl")
    ast.add_argument("--texts", help="the 'name: text' list (default: asterisk-core-sounds-en's, gzip read as is)")
    ast.add_argument("--sounds", help="the audio folder (default: /usr/share/asterisk/sounds/en)")
    ast.add_argument("--extension", default=".wav", help="audio file extension (default .wav)")

    ls = corpora.add_parser("librispeech", help="download, verify, extract and check LibriSpeech; write manifests")
    ls.add_argument("--root", required=True, help="working folder: downloads/, LibriSpeech/, manifests")
    _librispeech_source_options(ls)
    ls.add_argument("--out", help="where the manifests go (default: --root)")
    ls.add_argument("--formats", default="jsonl",
                    help="manifest formats, comma-separated: jsonl (always), json (deepspeech.pytorch), "
                         "csv (wav,txt as the MindSpore course reads)")
    ls.add_argument("--min-duration", type=float, default=1.0, help="training subsets: shortest utterance kept (s)")
    ls.add_argument("--max-duration", type=float, default=15.0, help="training subsets: longest utterance kept (s)")
    ls.add_argument("--delete-archives", action="store_true", help="delete each archive once extracted")

    conv = corpora.add_parser("convert", help="convert a manifest between jsonl, json (deepspeech.pytorch) and csv")
    conv.add_argument("source", help="manifest in any of the three formats")
    conv.add_argument("dest", help="output; the format comes from the suffix (.jsonl, .json, .csv)")
    conv.add_argument("--format", choices=["jsonl", "json", "csv"], help="output format, whatever the suffix")
    conv.add_argument("--txt-dir", help="json/csv: folder for the transcript files (default: <dest folder>/txt/<name>)")

    folder = corpora.add_parser("folder", help="your own data: audio files with same-named .txt, or a path,text CSV")
    folder.add_argument("source", help="a folder of audio + .txt files, or a .csv of path,text rows")
    folder.add_argument("--out", help="manifest path (default: <folder>/manifest.jsonl or <csv name>.jsonl)")
    folder.add_argument("--formats", default="jsonl", help="comma-separated: jsonl, json, csv")
    folder.add_argument("--jobs", type=int, help="decoding processes (default: all cores)")

    st = corpora.add_parser("stats", help="utterances, hours, speakers, duration histogram, text and audio problems")
    st.add_argument("manifest", help="manifest in any of the three formats")
    st.add_argument("--png", help="duration histogram (default: <manifest>.durations.png)")
    st.add_argument("--json", help="also write the statistics here")
    st.add_argument("--no-decode", action="store_true", help="trust the manifest's durations; do not decode audio")
    st.add_argument("--jobs", type=int, help="decoding processes (default: all cores)")
    data.set_defaults(func=cmd_data)

    train = sub.add_parser("train", help="train a model")
    train.add_argument("--config", help="YAML config or packaged name (mini, fsdd, mindspore_official)")
    train.add_argument("--out", help="run folder (default: runs/<config name>)")
    train.add_argument("--resume", metavar="RUN", help="continue a run folder from its last checkpoint")
    train.add_argument("--pretrained", help="initialise the weights from this checkpoint")
    train.add_argument("--backend", choices=["torch", "mindspore"])
    train.add_argument("--device", help="cpu, cuda, cuda:1… (default: the config's train.device)")
    train.add_argument("--nproc", type=int, help="data-parallel processes on this machine (runs torchrun)")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=_overrides_help())
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a checkpoint or an exported ONNX model on a manifest (WER/CER)")
    ev.add_argument("--checkpoint", help="a checkpoint (.pt, .ckpt)")
    ev.add_argument("--onnx", help="an exported ONNX model (fp32 or `ds2 export --int8`), run on ONNX Runtime")
    ev.add_argument("--model", help="a pretrained model by name (`ds2 models list`; downloaded on first use) or a "
                                    "deepspeech.pytorch .ckpt/.pth")
    ev.add_argument("--manifest", required=True)
    ev.add_argument("--out", help="folder for results.json and utterances.jsonl")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--cache-dir", help="feature cache (default: $DS2_CACHE or ~/.cache/deepspeech2/features)")
    ev.add_argument("--quiet", action="store_true", help="no per-utterance Ref/Hyp lines")
    ev.add_argument("--int8", action="store_true",
                    help="evaluate the int8 dynamically quantized model (torch, CPU): what it costs in WER")
    ev.add_argument("--backend", choices=["torch", "mindspore"],
                    help="evaluate with this backend (default: the checkpoint's; the other's is converted)")
    _decoder_options(ev)
    ev.set_defaults(func=cmd_eval)

    ex = sub.add_parser("export", help="export a checkpoint for inference (ONNX, MindIR)")
    ex.add_argument("--checkpoint", required=True)
    ex.add_argument("--format", default="onnx", choices=["onnx", "mindir"])
    ex.add_argument("--out", required=True)
    ex.add_argument("--manifest", help="audio to check the export on (default: the checkpoint's dev manifest)")
    ex.add_argument("--cache-dir")
    ex.add_argument("--int8", action="store_true",
                    help="ONNX with int8 dynamic quantization (LSTMs, matrix products): the fastest CPU engine")
    ex.add_argument("--streaming", action="store_true",
                    help="ONNX of the streaming step (state inputs/outputs) of a unidirectional model, for ds2 serve")
    ex.add_argument("--backend", choices=["torch", "mindspore"],
                    help="export with this backend (default: the checkpoint's; mindspore for --format mindir)")
    ex.set_defaults(func=cmd_export)

    tr = sub.add_parser("transcribe", help="transcribe audio files")
    tr.add_argument("files", nargs="+")
    tr.add_argument("--checkpoint", help="a training checkpoint (PyTorch .pt or MindSpore .ckpt)")
    tr.add_argument("--onnx", help="an exported ONNX model (needs no torch)")
    tr.add_argument("--model", help="a pretrained model by name (`ds2 models list`; downloaded on first use) or a "
                                    "deepspeech.pytorch .ckpt/.pth")
    tr.add_argument("--json", action="store_true", help="JSON per file with word start/end times")
    tr.add_argument("--engine", choices=["auto", "fp32", "int8"], default="auto",
                    help="for --checkpoint: auto (default) picks the fastest, int8 dynamic quantization for a "
                         "PyTorch model on CPU; fp32: as trained, exact")
    tr.add_argument("--backend", choices=["torch", "mindspore"],
                    help="run --checkpoint with this backend (default: the checkpoint's)")
    tr.add_argument("--chunk-seconds", type=float,
                    help="cut longer files into chunks of this length (default: the model's data.max_duration)")
    _decoder_options(tr)
    tr.set_defaults(func=cmd_transcribe)

    sv = sub.add_parser("serve", help="HTTP + WebSocket speech recognition with a web page (needs deepspeech2[serve])")
    sv.add_argument("--model", required=True, help="an ONNX export (fp32, int8, or `ds2 export --streaming`), a "
                                                   "checkpoint, or a registry name")
    sv.add_argument("--decoder", help="decoder YAML (beam search + LM); default: greedy")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; "
                                                        "0.0.0.0 serves the network)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--workers", type=int, help="inference threads (default: the cores)")
    sv.add_argument("--api-key", help="require this key on every endpoint (default: $DS2_API_KEY, else none)")
    sv.add_argument("--engine", choices=["auto", "fp32", "int8"], default="auto",
                    help="for a checkpoint (see ds2 transcribe); a streaming checkpoint runs fp32")
    sv.add_argument("--max-upload-mb", type=float, default=50.0, help="larger uploads get 413")
    sv.add_argument("--max-audio-seconds", type=float, default=600.0, help="longer audio gets 413")
    sv.add_argument("--allow-long", action="store_true", help="transcribe longer audio in pieces instead of 413")
    sv.add_argument("--max-streams", type=int, default=32, help="concurrent WebSocket streams; more get 503")
    sv.add_argument("--idle-timeout", type=float, default=30.0, help="close a stream silent this many seconds")
    sv.set_defaults(func=cmd_serve)

    cv = sub.add_parser("convert", help="convert a checkpoint: MindSpore .ckpt <-> PyTorch .pt; deepspeech.pytorch "
                                        "-> .pt")
    cv.add_argument("source", help="a .ckpt (ours, the official one, MindSpore 1.x or 2.x names), a .pt, or a "
                                   "deepspeech.pytorch .ckpt (V3, Lightning) or .pth (V2)")
    cv.add_argument("dest", help="the other format's file")
    cv.set_defaults(func=cmd_convert)

    models = sub.add_parser("models", help="pretrained models: list the registry, download, import a file")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    ml = models_sub.add_parser("list", help="every model: source, network, labels, published WER, cached or not")
    ml.add_argument("--json", action="store_true")
    md = models_sub.add_parser("download", help="download, verify and convert into the cache (resumes)")
    md.add_argument("names", nargs="+", metavar="NAME")
    md.add_argument("--base-url", help="a mirror serving the files under their origin's paths "
                                       "(default: $DS2_MODELS_BASE_URL, else the origin)")
    mi = models_sub.add_parser("import", help="put a model file you have into the cache (verified, converted)")
    mi.add_argument("file")
    mi.add_argument("--name", help="which registry model it is (default: the one whose checksum or file name "
                                   "matches)")
    for p in (ml, md, mi):
        p.add_argument("--cache-dir", help="model cache (default: $DS2_MODELS_DIR or "
                                           "$XDG_CACHE_HOME/deepspeech2/models)")
    models.set_defaults(func=cmd_models)

    run = sub.add_parser("run", help="run a recipe: prepare, train, evaluate, export, transcribe")
    run.add_argument("recipe", choices=["mini", "fsdd", "librispeech", "english"])
    run.add_argument("--out", required=True, help="run folder")
    run.add_argument("--data", help="mini: a sentence file; fsdd: the dataset folder; librispeech: as --root")
    run.add_argument("--root", help="librispeech: the data folder (downloads, extracted audio, manifests)")
    _librispeech_source_options(run, "librispeech: ")
    run.add_argument("--config", help="use this config instead of the recipe's")
    run.add_argument("--num-train", type=int, help="mini, english: training utterances to synthesize")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=_overrides_help())
    _decoder_options(run, "evaluate also with ")
    run.add_argument("--lm-text", nargs="+", metavar="TEXT",
                     help="mini: text for the recipe's LM instead of ../shared/data/text/ljspeech_sentences.txt "
                          "(test, dev and unseen-voice sentences are always left out)")
    run.add_argument("--no-lm", action="store_true", help="mini: greedy decoding only (no LM built or tuned)")
    run.set_defaults(func=cmd_run)

    lm = sub.add_parser("lm", help="n-gram language models for beam search: build, download, tune")
    lm_sub = lm.add_subparsers(dest="lm_command", required=True)
    lb = lm_sub.add_parser("build", help="an ARPA n-gram LM (modified Kneser-Ney) from text, one sentence per line")
    lb.add_argument("text", nargs="+", help="text files (normalised as transcripts are: upper case, numbers spelled)")
    lb.add_argument("--out", required=True, help="the ARPA file to write (.arpa, or .arpa.gz)")
    lb.add_argument("--order", type=int, default=6,
                    help="n-gram order (default 6: the highest flashlight-text's KenLM loads)")
    lb.add_argument("--unit", choices=["char", "word"], default="char",
                    help="char (default: what the lexicon-free decoder uses) or word")
    lb.add_argument("--prune", type=int, nargs="+", metavar="N",
                    help="count pruning per order, as lmplz: e.g. 0 0 1 drops trigrams and up seen once")
    lb.add_argument("--exclude", nargs="+", metavar="MANIFEST", help="leave out these manifests' sentences")
    ld = lm_sub.add_parser("download", help="OpenSLR's LibriSpeech LMs (resource 11), resumable and verified")
    ld.add_argument("corpus", choices=["librispeech"])
    ld.add_argument("--root", required=True, help="folder to download into")
    ld.add_argument("--files", help="comma-separated (default: the two pruned 3-grams, the 4-gram, the vocabulary)")
    ld.add_argument("--base-url", help="a mirror or a local server instead of https://www.openslr.org/resources/11/")
    ld.add_argument("--checksums", help="'md5  name' lines to verify the files against")
    lt = lm_sub.add_parser("tune", help="search the LM weight (alpha) and word bonus (beta) on a dev set")
    lt.add_argument("--checkpoint", help="a checkpoint (.pt, .ckpt)")
    lt.add_argument("--onnx", help="an exported ONNX model")
    lt.add_argument("--manifest", required=True, help="the dev set to tune on (never a test set)")
    lt.add_argument("--lm", required=True, help="the LM (ARPA or KenLM binary)")
    lt.add_argument("--out", required=True, help="folder for decoder.yaml, tune.csv/json/png and the log-prob cache")
    lt.add_argument("--alphas", type=_floats, default="1,1.5,2,2.5,3,4", help="LM weights to try")
    lt.add_argument("--betas", type=_floats, default="-2,-1,0,1", help="word bonuses to try")
    lt.add_argument("--trials", type=int, default=0,
                    help="random search: this many points within the alphas' and betas' ranges (default: the grid)")
    lt.add_argument("--beam-width", type=int, default=64)
    lt.add_argument("--widths", type=_floats, default="",
                    help="then try these beam widths (e.g. 16,32,64) at the best alpha and beta; the smallest "
                         "within 0.1 WER points of the best goes into decoder.yaml")
    lt.add_argument("--decoder", help="a decoder.yaml whose pruning settings to start from")
    lt.add_argument("--jobs", type=int, help="processes (default: all cores)")
    lt.add_argument("--cache-dir", help="feature cache (default: the model's)")
    lm.set_defaults(func=cmd_lm)

    be = sub.add_parser("bench", help="training and inference throughput, setup by setup (Markdown, JSON, PNG)")
    be.add_argument("--quick", action="store_true",
                    help="short utterances, one timed step per row, slow rows left out (~8 min, 2 cores)")
    be.add_argument("--out", default="runs/bench", help="folder for bench.md, bench.json, bench.png")
    be.add_argument("--rows", help="comma-separated row names or globs, e.g. 'torch-*,infer-*' (default: all)")
    be.add_argument("--threads", type=int, help="torch threads for the training rows (default: all cores)")
    be.add_argument("--wer-json", help="JSON of row name -> WER fraction, shown beside each row's speed")
    be.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError

    parser = build_parser()
    # Overrides may come before or after options: collect every key=value word.
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    args.argv = argv
    unknown = [x for x in extra if x.startswith("-") or "=" not in x]
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = list(args.overrides or []) + extra
    try:
        args.func(args)
    except (ConfigError, OSError, ValueError) as e:  # OSError: a missing file, a full disk
        print(f"ds2 {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
