"""Not TensorFlow: a stand-in so that google-research/bert's scripts import without it.

Only `tensorflow.compat.v1` exists here, with the three things the reference's
tokenization.py and create_pretraining_data.py use (see compat/v1.py). Tests
put tests/oracle on sys.path only when the real TensorFlow is not installed.
"""
