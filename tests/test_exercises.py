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


def notebook_solution(name, function):
    """The `function` defined by notebook `name`'s solution cell (tagged 'solution')."""
    import json
    from pathlib import Path
    cells = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    namespace = {"torch": torch}
    for cell in cells:
        source = "".join(cell["source"])
        if "solution" in cell.get("metadata", {}).get("tags", []) and f"def {function}" in source:
            exec(source, namespace)
            return namespace[function]
    raise AssertionError(f"no solution cell defines {function} in {name}")


@pytest.fixture(scope="module")
def pretrained():
    from capsnet_lib import load_pretrained
    return load_pretrained()


def test_the_primary_capsule_check_passes_the_solution_and_rejects_plausible_wrong_answers(pretrained, capsys):
    from capsnet_lib.exercises import check_primary_capsule_count
    check_primary_capsule_count(notebook_solution("00_introduction", "primary_capsule_count"), pretrained)
    assert capsys.readouterr().out.count("correct") == 5
    for wrong in (lambda n: 32 * ((n - 16) // 2) ** 2,                       # right for even sizes only
                  lambda n: 32 * ((n - 17) / 2 + 1) ** 2):                   # not floored
        with pytest.raises(NotYet):
            check_primary_capsule_count(wrong, pretrained)


def test_the_decoder_input_check_rejects_masking_by_the_prediction(pretrained, test_digits, capsys):
    from capsnet_lib.exercises import check_decoder_input
    images, labels = test_digits[0][:64], test_digits[1][:64]
    check_decoder_input(notebook_solution("05_decoder", "decoder_input"), pretrained, images, labels)
    assert capsys.readouterr().out.count("correct") == 2

    def by_prediction(caps, labels):
        keep = torch.nn.functional.one_hot((caps ** 2).sum(-1).argmax(1), 10).to(caps.dtype)
        return (caps * keep.unsqueeze(-1)).flatten(1)
    with pytest.raises(NotYet, match="labels the model did not predict"):
        check_decoder_input(by_prediction, pretrained, images, labels)


def test_the_schedule_check_tells_a_staircase_decay_from_the_real_one(capsys):
    from capsnet_lib import TrainConfig
    from capsnet_lib.exercises import check_lr_at
    check_lr_at(notebook_solution("06_training", "lr_at"), TrainConfig())
    assert capsys.readouterr().out.count("correct") == 5
    with pytest.raises(NotYet, match="lr after 1000 steps"):
        check_lr_at(lambda step: 1e-3 * 0.96 ** (step // 2000), TrainConfig())
