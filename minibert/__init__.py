"""minibert: BERT from scratch in NumPy, every forward and backward pass written by hand.

    from minibert import BertConfig, BertModel, BertTokenizer
    model = BertModel(BertConfig.preset("tiny"), seed=0)
    seq, pooled = model.forward(input_ids, token_type_ids, attention_mask)
    model.zero_grad(); model.backward(d_seq, d_pooled)
"""
from minibert import backend
from minibert.apps.embed import (
                                  embed,  # the function; its helpers: from minibert.apps.embed import load_encoder, ...
)
from minibert.model.bert import BertModel
from minibert.model.config import BertConfig
from minibert.model.heads import (BertForQuestionAnswering, BertForSequenceClassification,
                                  BertForTokenClassification)
from minibert.tokenization import BertTokenizer

__version__ = "0.1.0"
__all__ = ["backend", "BertConfig", "BertModel", "BertTokenizer", "embed", "BertForSequenceClassification",
           "BertForTokenClassification", "BertForQuestionAnswering", "__version__"]
