"""The ops of BERT, each a forward/backward pair (CS231n / llm.c style).

`x_forward(...) -> (out, cache)` computes the output and keeps what the
backward needs; `x_backward(dout, cache) -> gradients` returns the gradient of
the loss with respect to the inputs (and parameters), given the upstream
gradient `dout` of the output.

A cache of several values is a NamedTuple (LinearCache, LayerNormCache, AttentionCache, ...): its
fields have names (`cache.probs`) and it unpacks like the plain tuple it replaces. A backward
unpacks it (`x, weight, has_bias = cache`), so a plain tuple in the same order works as well.
A cache of one value (softmax's p, GELU's derivative, dropout's mask) is that array.
"""
from minibert.ops.activations import (gelu_backward, gelu_forward, gelu_tanh_backward, gelu_tanh_forward,
                                      tanh_backward, tanh_forward)
from minibert.ops.attention import (attention_mask_bias, merge_heads, scaled_dot_product_attention_backward,
                                    scaled_dot_product_attention_forward, split_heads)
from minibert.ops.dropout import dropout_backward, dropout_forward
from minibert.ops.embedding import embedding_backward, embedding_forward
from minibert.ops.erf import erf
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward
from minibert.ops.linear import linear_backward, linear_forward
from minibert.ops.losses import (IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward, mse_backward,
                                 mse_forward)
from minibert.ops.softmax import softmax_backward, softmax_forward
