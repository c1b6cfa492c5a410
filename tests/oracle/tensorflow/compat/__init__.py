"""See tensorflow/__init__.py: a stand-in, not TensorFlow."""
