import pytest

from deepspeech2.config import Config, ConfigError, config_path, load_config, parse_overrides


def test_overrides_are_parsed_as_yaml_values():
    assert parse_overrides(["train.lr=1e-3", "model.rnn_type=gru", "model.conv_channels=[8, 16]",
                            "model.bidirectional=false"]) == {
        "train": {"lr": "1e-3"}, "model": {"rnn_type": "gru", "conv_channels": [8, 16], "bidirectional": False}}


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  rnn_hidden: 64\ntrain:\n  lr: 0.01\n")
    cfg = load_config(path, ["train.lr=5e-1", "train.epochs=3"])
    assert cfg.model.rnn_hidden == 64 and cfg.train.lr == 0.5 and cfg.train.epochs == 3
    assert cfg.model.rnn_layers == 5  # default kept


def test_unknown_key_names_the_key_and_valid_keys():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["train.lrr=1"])
    assert "'train.lrr'" in str(err.value) and "train.lr" in str(err.value)


def test_invalid_choice_lists_the_choices():
    with pytest.raises(ConfigError, match="model.rnn_type.*lstm, gru, rnn"):
        load_config(None, ["model.rnn_type=transformer"])


def test_wrong_type_is_reported():
    with pytest.raises(ConfigError, match="train.epochs must be int"):
        load_config(None, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="must be a mapping"):
        Config.from_dict({"train": 3})


def test_round_trip_through_dict():
    cfg = load_config(config_path("mini"))
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_official_config_reproduces_the_mindspore_model():
    cfg = load_config(config_path("mindspore_official"))
    m, t = cfg.model, cfg.train
    assert (m.conv_channels, m.conv_kernels, m.conv_strides) == ([32, 32], [[41, 11], [21, 11]], [[2, 2], [2, 1]])
    assert (m.rnn_type, m.rnn_hidden, m.rnn_layers, m.bidirectional, m.conv_activation) == ("lstm", 1024, 5, True,
                                                                                             "tanh")
    assert (t.optimizer, t.lr, t.batch_size, t.epochs, t.lr_schedule) == ("adam", 3e-4, 20, 70, "official")
    assert cfg.text.blank == "last" and cfg.audio.window == "hamming"
    assert (cfg.audio.n_fft, cfg.audio.hop_length, cfg.audio.sample_rate) == (320, 160, 16000)


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="packaged configs: .*mini"):
        config_path("nope")


def test_out_of_range_values_are_rejected_with_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  log_every: 0\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: train.log_every must be positive"):
        load_config(path)
    with pytest.raises(ConfigError, match="data.max_duration"):
        load_config(None, ["data.min_duration=5", "data.max_duration=2"])


def test_per_bin_normalisation_needs_per_utterance_normalisation():
    with pytest.raises(ConfigError, match="audio.normalize_per_bin needs audio.normalize: true"):
        load_config(config_path("mini"), ["audio.normalize=false", "audio.normalize_per_bin=true"])
    assert load_config(config_path("mini"), ["audio.normalize_per_bin=true"]).audio.feature_spec().normalize_per_bin


def test_mel_bands_are_checked_against_the_fft():
    cfg = load_config(config_path("mini"), ["audio.n_mels=80", "audio.n_fft=512"])
    assert cfg.audio.num_bins == 80 and cfg.audio.feature_spec().n_mels == 80
    assert load_config(config_path("mini")).audio.num_bins == 161
    with pytest.raises(ConfigError, match=r"audio.n_mels = 80 is too many for audio.n_fft = 320"):
        load_config(config_path("mini"), ["audio.n_mels=80"])
    with pytest.raises(ConfigError, match=r"audio.n_mels must be 0"):
        load_config(config_path("mini"), ["audio.n_mels=-1"])
