"""``python -m deepspeech2.bench``: the torch-ddp2 row's torchrun worker (``--ddp-worker SPEC``), or ``ds2 bench``."""

import sys

if len(sys.argv) == 3 and sys.argv[1] == "--ddp-worker":
    from .ddp import ddp_worker

    ddp_worker(sys.argv[2])
else:
    from ..cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
