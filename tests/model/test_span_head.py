"""span_head_forward/backward (exercise 19's reference) compute BertForQuestionAnswering's loss and head gradients."""
from __future__ import annotations

import numpy

from minibert.gradcheck import odd_config, task_head_inputs
from minibert.model.heads import BertForQuestionAnswering
from minibert.model.heads.question_answering import span_head_backward, span_head_forward


def test_the_span_head_functions_agree_with_the_model_class():
    model = BertForQuestionAnswering(odd_config(), seed=3, dtype="float64").eval()
    inputs = task_head_inputs(model, numpy.random.default_rng(5))      # a start past T, a negative end
    out = model.forward(**inputs)
    model.zero_grad()
    model.backward(0.7)
    x, _ = model.bert.forward(inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"])
    w, b = model.params["qa_outputs.weight"], model.params["qa_outputs.bias"]
    loss, cache = span_head_forward(x, w, b, inputs["start_positions"], inputs["end_positions"])
    _, dw, db = span_head_backward(0.7, cache)
    assert abs(float(loss) - float(out["loss"])) < 1e-12
    numpy.testing.assert_allclose(dw, model.grads["qa_outputs.weight"], rtol=1e-10, atol=1e-14)
    numpy.testing.assert_allclose(db, model.grads["qa_outputs.bias"], rtol=1e-10, atol=1e-14)


def test_a_side_with_every_position_ignored_has_zero_loss_and_gradient():
    rng = numpy.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 3)), rng.normal(size=2)
    loss, cache = span_head_forward(x, w, b, numpy.array([4, 9]), numpy.array([1, 2]))
    only_end, _ = span_head_forward(x, w, b, numpy.array([1, 2]), numpy.array([1, 2]))
    assert numpy.isfinite(loss) and 0 < float(loss) < float(only_end)
    dx, dw, db = span_head_backward(1.0, cache)
    assert numpy.all(numpy.isfinite(dx)) and db.shape == (2,) and dw.shape == (2, 3)
