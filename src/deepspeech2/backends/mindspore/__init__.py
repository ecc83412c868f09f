"""The MindSpore backend (``pip install 'deepspeech2[mindspore]'``): the official network,
graph-mode training, .ckpt checkpoints, MindIR/ONNX export, conversion to and from PyTorch."""
