"""The exercise checker says 'correct' only for a right answer, and says what is wrong otherwise."""
import re

import pytest
import torch

from capsnet_lib.exercises import NotYet, check


def test_a_right_answer_is_called_correct(capsys):
    check("squash", torch.ones(2, 3), torch.ones(2, 3))
    check("count", 1152, 1152)
    check("pair", (torch.zeros(1), 2.0), (torch.zeros(1), 2.0))
    assert capsys.readouterr().out.count("correct") == 3


@pytest.mark.parametrize("answer, expected, message", [
    (torch.ones(2, 3), torch.ones(3, 2), "expected shape (3, 2), got (2, 3)"),
    (torch.ones(2) * 1.1, torch.ones(2), "largest difference is 0.1"),
    (torch.tensor([float("nan")]), torch.zeros(1), "nan or inf"),
    (1151, 1152, "expected 1152, got 1151"),
    (None, 1152, "expected 1152, got None"),
    ([1.0], torch.ones(1), "expected a tensor, got list"),
    ((torch.zeros(1),), (torch.zeros(1), 2.0), "expected 2 values"),
])
def test_a_wrong_answer_says_what_is_wrong_and_gives_the_hint(answer, expected, message):
    with pytest.raises(NotYet, match=re.escape(message)) as error:
        check("thing", answer, expected, hint="think again")
    assert str(error.value).startswith("thing: not yet.") and str(error.value).endswith("Hint: think again")
