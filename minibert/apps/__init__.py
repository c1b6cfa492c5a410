"""What a trained BERT is used for, built from the layers below.

    embed.py       sentence vectors (mean pooling, as sentence-transformers), token states,
                   attention maps of the bundled all-MiniLM-L6-v2 or any BERT folder
    vectors.py     cosine similarity, search, k-means, PCA, word senses, analogies
    records.py     cluster, classify and check the rows of a CSV with sentence vectors
    fill_mask.py   what a masked-LM head predicts for each [MASK] of a text
"""
