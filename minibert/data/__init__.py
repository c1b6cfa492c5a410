"""Data for BERT: text to model inputs, on the host (NumPy), before anything reaches the device.

    pretraining/   corpus readers, sentence splitting, masking, instances, features
                   (the same instances as google-research/bert's create_pretraining_data.py)
    tasks/         fine-tuning data: GLUE, WNUT-17 (NER), SQuAD / XQuAD; batching; metrics
"""
