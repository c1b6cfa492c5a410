"""The model layer: BERT's configuration, blocks, the encoder, its heads and its files.

    config.py       BertConfig: Hugging Face's config.json fields, presets tiny ... large
    blocks.py       embeddings, multi-head attention, Add & Norm, feed-forward, pooler
    bert.py         BertModel: embeddings -> L post-LN encoder layers -> pooler
    heads/          BertForPreTraining and the fine-tuning heads
    io.py           safetensors / JSON files; Hugging Face folders and parameter names
    pretrained.py   the bundled all-MiniLM-L6-v2
"""
from minibert.model.bert import BertModel
from minibert.model.config import BertConfig, ConfigError
from minibert.model.heads import (BertForPreTraining, BertForQuestionAnswering, BertForSequenceClassification,
                                  BertForTokenClassification)

__all__ = ["BertConfig", "ConfigError", "BertModel", "BertForPreTraining", "BertForSequenceClassification",
           "BertForTokenClassification", "BertForQuestionAnswering"]
