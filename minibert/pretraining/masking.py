"""The old import path of `minibert.data.pretraining.masking` (see minibert/pretraining/__init__.py)."""
from minibert.data.pretraining.masking import *  # noqa: F401,F403
