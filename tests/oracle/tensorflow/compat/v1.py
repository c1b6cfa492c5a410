"""The three parts of `tensorflow.compat.v1` that google-research/bert's data scripts use.

- gfile.GFile / gfile.Glob: reading the vocabulary and the corpus (plain files here);
- logging: tf.logging.info(...) and friends (Python's logging);
- flags: absl's flags, which the scripts define at import time.
"""
import functools
import glob
import logging as _logging
import types

from absl import flags

gfile = types.SimpleNamespace(GFile=functools.partial(open, encoding="utf-8"), Glob=glob.glob)
logging = _logging.getLogger("google_bert_oracle")
logging.INFO = _logging.INFO
logging.set_verbosity = logging.setLevel
