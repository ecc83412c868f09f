"""DeepSpeech2: build, train, evaluate, export and serve the DeepSpeech2 recognizer."""

__version__ = "0.1.0"
