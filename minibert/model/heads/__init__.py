"""The heads on top of BertModel, each with transformers' parameter names and losses.

    base.py                     BertWithHeads (modes, freezing), BertWithTaskHead (loading, saving)
    pretraining.py              BertForPreTraining: masked-LM (tied decoder) and next-sentence heads
    classification.py           BertForSequenceClassification: a label per sentence (pair)
    token_classification.py     BertForTokenClassification: a label per token (NER)
    question_answering.py       BertForQuestionAnswering: answer spans (SQuAD)
"""
from minibert.model.heads.base import BertWithHeads, BertWithTaskHead
from minibert.model.heads.classification import BertForSequenceClassification
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.model.heads.question_answering import BertForQuestionAnswering
from minibert.model.heads.token_classification import BertForTokenClassification

# a head's class by its name in config.json's "architectures"
TASK_HEADS = {cls.__name__: cls for cls in
              (BertForSequenceClassification, BertForTokenClassification, BertForQuestionAnswering)}

__all__ = ["BertWithHeads", "BertWithTaskHead", "BertForPreTraining", "BertForSequenceClassification",
           "BertForTokenClassification", "BertForQuestionAnswering", "TASK_HEADS"]
