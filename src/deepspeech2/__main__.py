"""``python -m deepspeech2 …`` is ``ds2 …``: how torchrun starts every process of a data-parallel
training (``torchrun --nproc-per-node N -m deepspeech2 train --config C …``, as ``ds2 train --nproc N``
does), since torchrun runs a module, not a console script. It sits above ``cli``; nothing imports it."""

import sys

from .cli import main

sys.exit(main())
