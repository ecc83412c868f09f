"""Recognition while the audio arrives: the models ``ds2 serve`` runs, and their streams.

A model gets one of two modes (``/v1/models`` says which):

* ``streaming``: a unidirectional model with unnormalised features (``model.bidirectional:
  false``, ``audio.normalize: false``, e.g. ``configs/mini_streaming.yaml``). Audio is turned
  into spectrogram frames as it comes (:class:`StreamingSpectrogram`) and the network runs
  chunk by chunk, carrying the convolution context, the RNN states and the lookahead buffer
  (backends/torch/streaming.py; in ONNX Runtime, a ``ds2 export --streaming`` model with
  state inputs and outputs). The streamed result equals the offline one.
* ``redecode``: any other model (bidirectional, or normalised per utterance). The audio so
  far is decoded again, at most once per ``redecode_seconds`` of new audio, and once more
  in full at the end, so the final text is the offline text.

Everything here needs numpy (and onnxruntime or torch for the model); the web server is app.py.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import onnx_contract as contract
from ..audio import FeatureSpec, _window, magnitude_features
from ..config import Config
from ..decoding import Decoder, DecoderConfig, collapse, greedy_path, greedy_words, path_text, path_words
from ..text import Alphabet

STREAMING_KEY = "deepspeech2_streaming"  # ONNX metadata of a ``ds2 export --streaming`` model: "1"


class StreamingSpectrogram:
    """``audio.spectrogram`` (unnormalised) computed piece by piece: the frames of the samples
    pushed so far whose window is complete; :meth:`finish` adds the last frames, whose window
    reaches into the reflected end. Concatenated, the frames equal ``spectrogram(all samples)``."""

    def __init__(self, spec: FeatureSpec):
        if spec.normalize:
            raise ValueError("per-utterance normalisation needs the whole utterance: it cannot stream")
        self.spec = spec
        self.n_fft, self.hop, self.pad = spec.n_fft, spec.hop_length, spec.n_fft // 2
        self.window = _window(spec.window, spec.n_fft)
        self.head = np.zeros(0, np.float32)  # all samples while there are too few to reflect the start
        self.padded: np.ndarray | None = None  # the reflect-padded signal from the next frame's start on
        self.tail = np.zeros(0, np.float32)  # the last pad + 1 samples, for the reflected end
        self.total = 0

    def _frames(self, padded: np.ndarray, count: int) -> np.ndarray:
        frames = np.lib.stride_tricks.as_strided(
            padded, shape=(count, self.n_fft), strides=(padded.strides[0] * self.hop, padded.strides[0]))
        magnitude = np.abs(np.fft.rfft(frames * self.window, n=self.n_fft, axis=1))
        return np.ascontiguousarray(magnitude_features(magnitude, self.spec))

    def push(self, samples: np.ndarray) -> np.ndarray:
        samples = np.asarray(samples, np.float32)
        self.total += len(samples)
        self.tail = np.concatenate([self.tail, samples])[-(self.pad + 1):]
        if self.padded is None:
            self.head = np.concatenate([self.head, samples])
            if len(self.head) <= self.pad:
                return np.zeros((self.spec.num_bins, 0), np.float32)
            self.padded = np.concatenate([self.head[self.pad:0:-1], self.head])
            self.head = np.zeros(0, np.float32)
        else:
            self.padded = np.concatenate([self.padded, samples])
        count = 0 if len(self.padded) < self.n_fft else 1 + (len(self.padded) - self.n_fft) // self.hop
        features = self._frames(self.padded, count)
        self.padded = self.padded[count * self.hop:]
        return features

    def finish(self) -> np.ndarray:
        from ..audio import spectrogram

        if self.padded is None:  # too short to reflect: the offline path pads with zeros
            return spectrogram(self.head, self.spec) if self.total else np.zeros((self.spec.num_bins, 0), np.float32)
        end = self.tail[-2: -2 - self.pad: -1] if self.pad else self.tail[:0]
        padded = np.concatenate([self.padded, end])
        count = 1 + (len(padded) - self.n_fft) // self.hop if len(padded) >= self.n_fft else 0
        self.padded = padded[count * self.hop:]
        return self._frames(padded, count)


class StreamingLayout:
    """The shapes of a streaming model's state, from its config (numpy only)."""

    def __init__(self, cfg: Config):
        model = cfg.model
        self.num_bins = cfg.audio.feature_spec().num_bins
        self.convs: list[tuple[int, int, int, int]] = []  # (in channels, in bins, time kernel, time stride)
        channels, bins = 1, self.num_bins
        for out_channels, kernel, stride in zip(model.conv_channels, model.conv_kernels, model.conv_strides,
                                                strict=False):
            self.convs.append((channels, bins, kernel[1], stride[1]))
            bins = (bins + 2 * (kernel[0] // 2) - kernel[0]) // stride[0] + 1
            channels = out_channels
        self.rnn_type, self.rnn_layers, self.rnn_hidden = model.rnn_type, model.rnn_layers, model.rnn_hidden
        self.context = model.lookahead_context
        self.feature_stride = model.conv_strides[0][1]
        self.names = [f"conv{i}_cache" for i in range(len(self.convs))]
        self.names += [f"conv{i}_tail" for i in range(1, len(self.convs))]
        for j in range(self.rnn_layers):
            self.names += [f"rnn{j}_h", f"rnn{j}_c"] if self.rnn_type == "lstm" else [f"rnn{j}_h"]
        self.names += ["lookahead_cache", "lookahead_tail"]
        self.min_first_frames = self._min_first_frames()

    def initial_state(self) -> dict[str, np.ndarray]:
        """Caches holding the zero frames the offline model pads with; zero RNN states; no tails."""
        state = {f"conv{i}_cache": np.zeros((1, c, f, k // 2), np.float32)
                 for i, (c, f, k, _) in enumerate(self.convs)}
        state.update(self.tails(final=False))
        for j in range(self.rnn_layers):
            state[f"rnn{j}_h"] = np.zeros((1, 1, self.rnn_hidden), np.float32)
            if self.rnn_type == "lstm":
                state[f"rnn{j}_c"] = np.zeros((1, 1, self.rnn_hidden), np.float32)
        state["lookahead_cache"] = np.zeros((0, 1, self.rnn_hidden), np.float32)
        return state

    def tails(self, final: bool) -> dict[str, np.ndarray]:
        """The right-hand zero padding of every stage after the first: empty until the last chunk."""
        tails = {f"conv{i}_tail": np.zeros((1, c, f, k // 2 if final else 0), np.float32)
                 for i, (c, f, k, _) in enumerate(self.convs) if i}
        tails["lookahead_tail"] = np.zeros((self.context if final else 0, 1, self.rnn_hidden), np.float32)
        return tails

    def final_features(self) -> int:
        """Zero feature frames that end a stream (the first convolution's right padding)."""
        return self.convs[0][2] // 2

    def _min_first_frames(self) -> int:
        """The fewest feature frames a first (not final) chunk needs so every stage has an output."""
        for frames in range(1, 10_000):
            length, ok = frames, True
            for _, _, kernel, stride in self.convs:
                length += kernel // 2
                if length < kernel:
                    ok = False
                    break
                length = (length - kernel) // stride + 1
            if ok and length >= self.context + 1:
                return frames
        raise ValueError("the model's receptive field is too large to stream")


class StreamingEngine:
    """Runs one step of a streaming model: ``step(features, state) -> (log_probs (n, C), state)``."""

    def __init__(self, cfg: Config, run_step, label: str):
        self.cfg = cfg
        self.layout = StreamingLayout(cfg)
        self._run = run_step
        self.label = label

    def step(self, features: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self._run(np.ascontiguousarray(features[None], np.float32), state)

    @classmethod
    def from_onnx(cls, session, cfg: Config, label: str) -> StreamingEngine:
        layout = StreamingLayout(cfg)
        names = [i.name for i in session.get_inputs()]
        if names != ["features", *layout.names]:
            raise ValueError(f"streaming ONNX inputs {names} do not match the config's layout {layout.names}")
        outputs = [o.name for o in session.get_outputs()]

        def run_step(features: np.ndarray, state: dict[str, np.ndarray]):
            results = session.run(None, {"features": features, **{n: state[n] for n in layout.names}})
            new_state = {name.removesuffix("_out"): value for name, value in zip(outputs[1:], results[1:], strict=True)}
            return results[0][0], new_state

        return cls(cfg, run_step, label)

    @classmethod
    def from_torch(cls, model, cfg: Config, label: str) -> StreamingEngine:
        import torch

        from ..backends.torch.streaming import StreamingStep

        step = StreamingStep(model).eval()

        def run_step(features: np.ndarray, state: dict[str, np.ndarray]):
            with torch.inference_mode():
                inputs = [torch.from_numpy(state[n]) for n in step.names]
                results = step(torch.from_numpy(features), *inputs)
            names = [n for n in step.names if "_tail" not in n]
            return results[0][0].numpy(), {n: r.numpy() for n, r in zip(names, results[1:], strict=True)}

        return cls(cfg, run_step, label)


def _words(log_probs: np.ndarray, alphabet: Alphabet, frame_seconds: float, offset: float = 0.0) -> list[dict]:
    return [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(w).items()}
            for w in greedy_words(log_probs, alphabet, frame_seconds, offset)]


def _text(log_probs: np.ndarray, alphabet: Alphabet) -> str:
    if not len(log_probs):
        return ""
    ids, _ = collapse(greedy_path(log_probs), alphabet.blank_id)
    return " ".join(alphabet.decode(ids).split())


class Recognizer:
    """A loaded model: offline transcription of samples, and new streams.

    ``mode`` is ``streaming`` or ``redecode`` (module docstring); ``engine`` names what runs it.
    """

    def __init__(self, cfg: Config, path: str, engine: str, streaming: StreamingEngine | None, offline=None,
                 redecode_seconds: float = 1.0, pause_seconds: float = 0.8, decoder: DecoderConfig | None = None):
        self.cfg = cfg
        self.decoder_cfg = (decoder or DecoderConfig()).validate()
        self.decoder_name = describe_decoder(self.decoder_cfg)
        # flashlight's beam decoders keep state while they decode: one per inference thread
        # (the LM itself is loaded once and shared).
        self._decoders = threading.local()
        # A Transcriber has one decoder: with beam search its calls take turns.
        self._offline_lock = threading.Lock() if self.decoder_cfg.type == "beam" else None
        self.path = path
        self.engine = engine
        self.streaming = streaming
        self.offline = offline  # a transcribe.Transcriber (redecode mode)
        self.mode = "streaming" if streaming is not None else "redecode"
        self.alphabet = Alphabet(cfg.text.blank)
        self.spec = cfg.audio.feature_spec()
        self.sample_rate = self.spec.sample_rate
        self.frame_seconds = cfg.audio.hop_length / cfg.audio.sample_rate * cfg.model.time_stride
        self.redecode_seconds = redecode_seconds
        self.pause_seconds = pause_seconds

    def decoder(self) -> Decoder:
        """This thread's decoder (the final text and timings; partial text is always greedy)."""
        decoder = getattr(self._decoders, "decoder", None)
        if decoder is None:
            decoder = self._decoders.decoder = Decoder(self.decoder_cfg, self.alphabet)
        return decoder

    def final(self, log_probs: np.ndarray) -> dict:
        """{"text", "words"} of a whole utterance's log-probabilities, with the configured decoder."""
        path = self.decoder().path(log_probs) if len(log_probs) else np.zeros(0, np.int64)
        return {"text": path_text(path, self.alphabet),
                "words": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(w).items()}
                          for w in path_words(path, self.alphabet, self.frame_seconds)]}

    def offline_transcribe(self, samples: np.ndarray) -> dict:
        if self._offline_lock is None:
            return self.offline.transcribe_samples(samples)
        with self._offline_lock:
            return self.offline.transcribe_samples(samples)

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, threads: int = 1, engine: str = "auto", decoder: DecoderConfig | None = None,
             **options) -> Recognizer:
        """An ONNX export (a streaming one, or the plain one) or a checkpoint; ``threads`` per inference."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file (an ONNX export or a checkpoint)")
        if path.suffix == ".onnx":
            return cls._load_onnx(path, threads, decoder=decoder, **options)
        return cls._load_checkpoint(path, threads, engine, decoder=decoder, **options)

    @classmethod
    def _load_onnx(cls, path: Path, threads: int, **options) -> Recognizer:
        session = contract.open_session(path, threads, inter_threads=1)
        config, quantization = contract.read_metadata(session, path)
        cfg = Config.from_dict(config, str(path))
        label = "onnxruntime-int8" if quantization == contract.INT8_DYNAMIC else "onnxruntime"
        if session.get_modelmeta().custom_metadata_map.get(STREAMING_KEY):
            return cls(cfg, str(path), label + "-streaming", StreamingEngine.from_onnx(session, cfg, label), **options)
        from ..transcribe import Transcriber

        del session
        return cls(cfg, str(path), label, None,
                   Transcriber.from_onnx(path, threads=threads, decoder=options.get("decoder")), **options)

    @classmethod
    def _load_checkpoint(cls, path: Path, threads: int, engine: str, **options) -> Recognizer:
        from ..checkpoints import read_config

        cfg = read_config(path)
        if can_stream(cfg) and cfg.backend == "torch" and engine in ("auto", "fp32"):
            import torch

            from ..checkpoints import load_backend

            torch.set_num_threads(threads)
            cfg, backend = load_backend(path, device="cpu")
            return cls(cfg, str(path), "torch-streaming", StreamingEngine.from_torch(backend.model, cfg, "torch"),
                       **options)
        from ..transcribe import Transcriber

        transcriber = Transcriber.from_checkpoint(path, device="cpu", engine=engine, decoder=options.get("decoder"))
        return cls(cfg, str(path), transcriber.engine, None, transcriber, **options)

    # -- offline ---------------------------------------------------------------------------
    def transcribe(self, samples: np.ndarray) -> dict:
        """{"text", "words", "duration"} of mono float32 samples at ``sample_rate``."""
        duration = round(len(samples) / self.sample_rate, 3)
        if self.streaming is None:
            result = self.offline_transcribe(samples)
            return {"text": result["text"], "words": result["words"], "duration": duration}
        return {**self.final(self._stream_all(samples).log_probs), "duration": duration}

    def transcribe_log_probs(self, samples: np.ndarray) -> np.ndarray:
        """The streaming model's log-probabilities (frames, classes) of all of ``samples``."""
        return self._stream_all(samples).log_probs

    def _stream_all(self, samples: np.ndarray) -> StreamingSession:
        stream = StreamingSession(self)
        # Pieces of 10 s bound the memory of long files; the result does not depend on them.
        piece = 10 * self.sample_rate
        for start in range(0, len(samples), piece):
            stream.accept(samples[start: start + piece])
        stream.finish()
        return stream

    def new_stream(self) -> StreamingSession | RedecodeSession:
        return StreamingSession(self) if self.streaming is not None else RedecodeSession(self)

    def describe(self) -> dict:
        created = int(Path(self.path).stat().st_mtime) if Path(self.path).exists() else 0
        return {"id": Path(self.path).name, "object": "model", "created": created, "owned_by": "deepspeech2",
                "path": self.path,
                "engine": self.engine, "mode": self.mode, "sample_rate": self.sample_rate,
                "bidirectional": self.cfg.model.bidirectional,
                "lookahead_seconds": (round(self.cfg.model.lookahead_context * self.frame_seconds, 3)
                                      if self.mode == "streaming" else None),
                "redecode_seconds": self.redecode_seconds if self.mode == "redecode" else None,
                "decoder": self.decoder_name}


def describe_decoder(cfg: DecoderConfig) -> str:
    """"greedy", or "beam" with its width and LM file, for answers and /v1/models."""
    if cfg.type != "beam":
        return "greedy"
    lm = f", lm={Path(cfg.lm).name}, alpha={cfg.alpha:g}, beta={cfg.beta:g}" if cfg.lm else ""
    return f"beam(width={cfg.beam_width}{lm})"


def can_stream(cfg: Config) -> bool:
    """Chunked inference gives the offline result: forward-only RNNs, no per-utterance statistics."""
    return not cfg.model.bidirectional and not cfg.audio.normalize


class _Session:
    """What both stream kinds share: the pause detector (a result is sent at a long pause)."""

    def __init__(self, recognizer: Recognizer):
        self.recognizer = recognizer
        self.alphabet = recognizer.alphabet
        self.samples_in = 0
        self.finished = False
        self.lock = threading.Lock()  # one inference at a time per stream
        self.segment_start = 0  # frame where the current segment begins
        self.segments_sent = 0

    @property
    def seconds(self) -> float:
        return self.samples_in / self.recognizer.sample_rate


class StreamingSession(_Session):
    """One stream through a streaming model: features and log-probabilities grow chunk by chunk."""

    def __init__(self, recognizer: Recognizer, chunk_seconds: float = 0.16):
        super().__init__(recognizer)
        self.engine = recognizer.streaming
        self.layout = self.engine.layout
        self.spectrogram = StreamingSpectrogram(recognizer.spec)
        self.state = self.layout.initial_state()
        stride = self.layout.feature_stride
        hop_seconds = recognizer.cfg.audio.hop_length / recognizer.sample_rate
        self.chunk_frames = max(stride, round(chunk_seconds / hop_seconds) // stride * stride)
        self.pending = np.zeros((self.layout.num_bins, 0), np.float32)
        self.started = False
        self.log_probs = np.zeros((0, len(self.alphabet)), np.float32)

    def accept(self, samples: np.ndarray) -> bool:
        """Add samples; True when new output frames were computed."""
        with self.lock:
            self.samples_in += len(samples)
            self.pending = np.concatenate([self.pending, self.spectrogram.push(samples)], axis=1)
            stride = self.layout.feature_stride
            needed = self.chunk_frames if self.started else max(self.chunk_frames,
                                                                 -(-self.layout.min_first_frames // stride) * stride)
            if self.pending.shape[1] < needed:
                return False
            # A multiple of the first stride, so the first convolution's cache keeps one length.
            take = self.pending.shape[1] // stride * stride
            self._step(self.pending[:, :take], final=False)
            self.pending = self.pending[:, take:]
            self.started = True
            return True

    def finish(self) -> dict:
        """The end of the stream: the last frames, then the final {"text", "words"} (configured decoder)."""
        with self.lock:
            if not self.finished and self.samples_in:
                zeros = np.zeros((self.layout.num_bins, self.layout.final_features()), np.float32)
                self._step(np.concatenate([self.pending, self.spectrogram.finish(), zeros], axis=1), final=True)
                self.pending = self.pending[:, :0]
            self.finished = True
            return self.recognizer.final(self.log_probs)

    def _step(self, features: np.ndarray, final: bool) -> None:
        state = {**self.state, **self.layout.tails(final)}
        log_probs, self.state = self.engine.step(features, state)
        self.log_probs = np.concatenate([self.log_probs, log_probs])

    def text(self) -> str:
        """The greedy text so far (partial results)."""
        return _text(self.log_probs, self.alphabet)

    def pause_segment(self) -> dict | None:
        """The segment since the last one, when the output has been blank for ``pause_seconds``
        after some text (a long pause); None otherwise."""
        frames = int(round(self.recognizer.pause_seconds / self.recognizer.frame_seconds))
        segment = self.log_probs[self.segment_start:]
        if len(segment) <= frames:
            return None
        path = greedy_path(segment)
        if (path[-frames:] != self.alphabet.blank_id).any() or (path[:-frames] == self.alphabet.blank_id).all():
            return None
        offset = self.segment_start * self.recognizer.frame_seconds
        result = {"text": _text(segment, self.alphabet),
                  "words": _words(segment, self.alphabet, self.recognizer.frame_seconds, offset),
                  "segment": self.segments_sent, "final": False}
        self.segment_start = len(self.log_probs)
        self.segments_sent += 1
        return result


class RedecodeSession(_Session):
    """One stream through a model that cannot stream: the audio so far is decoded again, at a
    bounded rate (at most once per ``redecode_seconds`` of new audio, or per tenth of the audio
    so far when that is longer)."""

    def __init__(self, recognizer: Recognizer):
        super().__init__(recognizer)
        self.audio: list[np.ndarray] = []
        self.decoded_at = 0  # samples_in at the last decode
        self.result = {"text": "", "words": []}

    def accept(self, samples: np.ndarray) -> bool:
        with self.lock:
            self.audio.append(np.asarray(samples, np.float32))
            self.samples_in += len(samples)
            # Every redecode_seconds of new audio, or every tenth of the audio so far when that is
            # more: a long stream costs a bounded multiple of one decode, not its square.
            interval = max(self.recognizer.redecode_seconds * self.recognizer.sample_rate, 0.1 * self.samples_in)
            if self.samples_in - self.decoded_at < interval:
                return False
            self._decode()
            return True

    def finish(self) -> dict:
        with self.lock:
            if not self.finished and self.samples_in:
                self._decode()
            self.finished = True
            return dict(self.result)

    def _decode(self) -> None:
        samples = np.concatenate(self.audio) if self.audio else np.zeros(0, np.float32)
        self.audio = [samples]
        self.decoded_at = self.samples_in
        result = self.recognizer.offline_transcribe(samples)
        self.result = {"text": result["text"], "words": result["words"]}

    def text(self) -> str:
        return self.result["text"]

    def pause_segment(self) -> dict | None:
        return None  # the whole text is decoded again each time: segments would be revised


def export_streaming(checkpoint: str | Path, out: str | Path, int8: bool = False, seconds: float = 3.0) -> dict:
    """``ds2 export --streaming``: a checkpoint's streaming step as ONNX (state inputs and
    outputs), checked by streaming the same audio through PyTorch and ONNX Runtime."""

    from ..backends.torch.streaming import export_streaming_onnx
    from ..checkpoints import load_backend, read_config

    cfg = read_config(checkpoint)
    if not can_stream(cfg) or cfg.backend != "torch":
        raise ValueError(f"{checkpoint}: a streaming export needs a PyTorch model with model.bidirectional: false "
                         f"and audio.normalize: false (e.g. configs/mini_streaming.yaml)")
    cfg, backend = load_backend(checkpoint, device="cpu")
    layout = StreamingLayout(cfg)
    example = layout.initial_state()
    example.update(layout.tails(final=True))
    example["lookahead_cache"] = np.zeros((max(1, layout.context), 1, layout.rnn_hidden), np.float32)
    example["features"] = np.random.default_rng(0).standard_normal(
        (1, layout.num_bins, 8 * layout.feature_stride)).astype(np.float32)
    metadata = {**contract.config_metadata(cfg.to_dict()), STREAMING_KEY: "1"}
    out = Path(out)
    if int8:
        from ..backends.torch.export import quantize_int8

        fp32 = out.with_name(f".{out.stem}.fp32.onnx")
        export_streaming_onnx(backend.model, fp32, example, metadata)
        tmp = out.with_name(f".{out.stem}.int8.tmp.onnx")
        try:
            quantize_int8(fp32, tmp)
        finally:
            fp32.unlink(missing_ok=True)
        import onnx

        proto = onnx.load(str(tmp))
        present = {p.key for p in proto.metadata_props}
        for key, value in {**metadata, contract.QUANTIZATION_KEY: contract.INT8_DYNAMIC}.items():
            if key not in present:
                proto.metadata_props.add(key=key, value=value)
            else:
                next(p for p in proto.metadata_props if p.key == key).value = value
        onnx.save(proto, str(tmp))
        tmp.replace(out)
    else:
        export_streaming_onnx(backend.model, out, example, metadata)
    # The check: a stream of noise in uneven pieces through both engines.
    samples = (np.random.default_rng(1).standard_normal(int(seconds * cfg.audio.sample_rate)) * 0.1).astype(np.float32)
    reference = Recognizer(cfg, str(checkpoint), "torch-streaming",
                           StreamingEngine.from_torch(backend.model, cfg, "torch")).transcribe_log_probs(samples)
    exported = Recognizer.load(out).transcribe_log_probs(samples)
    if exported.shape != reference.shape:
        raise RuntimeError(f"{out}: {exported.shape[0]} output frames, PyTorch gives {reference.shape[0]}")
    return {"path": str(out), "format": "onnx-streaming", "bytes": out.stat().st_size,
            "max_abs_diff": float(np.abs(exported - reference).max()) if len(reference) else 0.0,
            "quantization": contract.INT8_DYNAMIC if int8 else None}
