"""The old import path of `minibert.data.pretraining`, kept so that code written against it, such as
learners' solutions to exercises 10 and 11 (`from minibert.pretraining.masking import CLS, SEP`),
keeps working. New code imports from `minibert.data.pretraining`."""
from minibert.data.pretraining import *  # noqa: F401,F403
from minibert.data.pretraining import __all__  # noqa: F401
