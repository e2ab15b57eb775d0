"""The exercise checker says 'correct' only for a right answer, and says what is wrong otherwise."""
import json
import re
import runpy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

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
    ([1.0], torch.ones(1), "expected a tensor, got list"),
    ((torch.zeros(1),), (torch.zeros(1), 2.0), "expected 2 values"),
    ("1152", 1152, "expected the number 1152, got the text '1152'"),
    (torch.ones(2, dtype=torch.complex64), torch.ones(2), "expected a real tensor, got a complex one"),
])
def test_a_wrong_answer_says_what_is_wrong_and_gives_the_hint(answer, expected, message):
    with pytest.raises(NotYet, match=re.escape(message)) as error:
        check("thing", answer, expected, hint="think again")
    assert str(error.value).startswith("thing: not yet.") and str(error.value).endswith("Hint: think again")


SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"


def solution(name):
    """The function that notebooks/solutions/NAME.py defines (NAME is NN_function)."""
    namespace = runpy.run_path(str(SOLUTIONS / f"{name}.py"))
    return namespace[name.split("_", 1)[1]]


@pytest.fixture(scope="module")
def pretrained():
    from capsnet_lib import load_pretrained
    return load_pretrained()


@pytest.fixture(scope="module")
def cases(pretrained, test_digits):
    """Per exercise: (its check, called with an answer) for the solution, the stub and wrong answers."""
    from capsnet_lib import DigitCaps, TrainConfig
    import capsnet_lib.exercises as ex
    images, labels = test_digits[0][:64], test_digits[1][:64]
    torch.manual_seed(0)
    layer = DigitCaps()
    recon = pretrained(images[:20]).reconstructions.detach()[:, 0]
    return {
        "00_primary_capsule_count": lambda f: ex.check_primary_capsule_count(f, pretrained),
        "01_unsquash": ex.check_unsquash,
        "02_receptive_field": lambda f: ex.check_receptive_field(f, pretrained),
        "03_agreement": ex.check_agreement,
        "04_all_predictions": lambda f: ex.check_all_predictions(f, layer),
        "05_decoder_input": lambda f: ex.check_decoder_input(f, pretrained, images, labels),
        "06_lr_at": lambda f: ex.check_lr_at(f, TrainConfig()),
        "07_per_image_error": lambda f: ex.check_per_image_error(f, pretrained, images[:16]),
        "08_centre_x": lambda f: ex.check_centre_x(f, recon),
    }


def _by_prediction(caps, labels):
    keep = torch.nn.functional.one_hot((caps ** 2).sum(-1).argmax(1), 10).to(caps.dtype)
    return (caps * keep.unsqueeze(-1)).flatten(1)


# The plausible wrong answers each check must refuse, with the case that tells them apart.
WRONG = {
    "00_primary_capsule_count": [(lambda n: 32 * ((n - 16) // 2) ** 2, "17x17"),      # right for even sizes only
                                 (lambda n: 32 * ((n - 17) / 2 + 1) ** 2, "18x18"),    # not floored
                                 (lambda n: 32 * round((n - 17) / 2 + 1) ** 2, "18x18")],  # right at 28, 29, 36, 40, 41
    "01_unsquash": [(lambda v: v / (1 - v.norm(dim=-1, keepdim=True)), "unsquash"),    # length formula of |v| alone
                    (lambda v: v.norm(dim=-1, keepdim=True).expand_as(v), "unsquash"),  # direction lost
                    (lambda v: v / v.norm(dim=1, keepdim=True) * (v.norm(dim=1, keepdim=True)  # a norm over dim 1
                     / (1 - v.norm(dim=1, keepdim=True))).sqrt(), "(4, 50, 8) capsules")],
    "02_receptive_field": [(lambda y, x: (2 * y, 2 * y + 17, 2 * x, 2 * x + 17), "(0, 0)"),   # one row too many
                           (lambda y, x: (2 * x, 2 * x + 16, 2 * y, 2 * y + 16), "(2, 4)"),   # rows and columns swapped
                           (lambda y, x: (y, y + 16, x, x + 16), "(2, 4)")],                   # stride 1
    "03_agreement": [(lambda u_hat, v: (u_hat * v.unsqueeze(1)).sum(dim=2), "agreement"),       # summed over parents
                     (lambda u_hat, v: torch.einsum("bijd,bjd->bij", u_hat, v) / 16, "agreement")],  # a mean
    "04_all_predictions": [(lambda W, u: torch.einsum("ijdk,bk->bijd", W, u.sum(1)), "all predictions"),  # i dropped
                           (lambda W, u: torch.zeros(*u.shape[:2], *W.shape[1:3]) + 0 * u.zero_().sum(),
                            "all predictions")],                               # zeroes its input, returns zeros
    "05_decoder_input": [(_by_prediction, "labels the model did not predict"),
                         (lambda caps, labels: caps * F.one_hot(labels, 10)[..., None], "got (64, 10, 16)"),
                         (lambda caps, labels: (caps * F.one_hot(labels, 10)[..., None]).view(-1, 1, 160),
                          "got (64, 1, 160)"),                                 # decodes the same, wrong shape
                         (lambda caps, labels: [0.0] * 160, "expected a tensor, got list")],
    "06_lr_at": [(lambda step: 1e-3 * 0.96 ** (step // 2000), "lr after 1 steps"),  # a staircase
                 (lambda step: 1e-3 * 0.96 ** ((step + 1) / 2000), "lr after 1 steps")],  # one step off
    "07_per_image_error": [(lambda x, r: ((r - x) ** 2).flatten(1).mean(dim=1), "per-image"),      # a pixel mean
                           (lambda x, r: ((r - x) ** 2).sum().expand(len(x)), "per-image")],       # the batch sum
    "08_centre_x": [(lambda im: (im.fill_(1.0) * torch.arange(28.0)).sum((1, 2)) / im.sum((1, 2)), "centre_x"),  # fills
                    (lambda im: (im * torch.arange(28.0)[:, None]).sum((1, 2)) / im.sum((1, 2)), "centre_x"),  # rows
                    (lambda im: (im * torch.arange(28.0)).sum((1, 2)), "centre_x")],           # not normalised
}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_each_solution_passes_its_check(name, cases, capsys):
    cases[name](solution(name))
    output = capsys.readouterr().out
    assert "correct" in output and "not answered" not in output, output


def _predictions_in_place(W, u):                                         # right, with unsqueeze_ on its input
    return (W @ u.unsqueeze_(2).unsqueeze_(-1)).squeeze(-1)


RIGHT_IN_ANOTHER_FORM = {
    "04_all_predictions": _predictions_in_place,
    "05_decoder_input": lambda caps, labels: (caps.double() * F.one_hot(labels, 10).double()[..., None]).flatten(1),
}


@pytest.mark.parametrize("name", sorted(RIGHT_IN_ANOTHER_FORM))
def test_a_right_answer_that_works_in_place_or_in_float64_is_called_correct(name, cases, capsys):
    cases[name](RIGHT_IN_ANOTHER_FORM[name])
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(WRONG))
def test_each_check_refuses_the_plausible_wrong_answers(name, cases):
    for wrong, where in WRONG[name]:
        with pytest.raises(NotYet, match=re.escape(where)):
            cases[name](wrong)


@pytest.mark.parametrize("name", sorted(WRONG))
def test_an_unanswered_exercise_says_so_once_without_failing(name, cases, capsys):
    def stub(*args):
        """A notebook's exercise cell before the reader fills it in."""
    cases[name](stub)
    output = capsys.readouterr().out
    assert output.count("not answered yet") == 1 and "correct" not in output, output


def _cells(notebook):
    return json.loads(notebook.read_text())["cells"]


@pytest.mark.parametrize("name", sorted(WRONG))
def test_no_notebook_holds_its_solution_and_each_links_it(name):
    """The solution is not in the executed path nor readable in any viewer: the stored notebook has
    only the stub, and its markdown links the solution file."""
    notebook = next((SOLUTIONS.parent).glob(f"{name[:2]}_*.ipynb"))
    body = "".join(line for line in open(SOLUTIONS / f"{name}.py") if not line.lstrip().startswith(("\"\"\"", "#")))
    last_line = [line.strip() for line in body.splitlines() if line.strip()][-1]      # e.g. its return statement
    text = "".join("".join(cell["source"]) for cell in _cells(notebook))
    assert last_line not in text, f"{notebook.name} shows its solution's line {last_line!r}"
    assert f"](solutions/{name}.py)" in text


# --- the capstone (notebook 09): each piece's mistake is named where it is made ------------------

@pytest.fixture(scope="module")
def capstone(pretrained, test_digits):
    from capsnet_lib.exercises import check_capstone
    solved = runpy.run_path(str(SOLUTIONS / "09_capstone.py"))
    return solved, lambda pieces: check_capstone(pieces, pretrained, test_digits[0][:8])


def test_the_capstone_solution_is_cl_capsnet(capstone, capsys):
    solved, run = capstone
    run(solved)
    assert "your CapsNet is cl.CapsNet" in capsys.readouterr().out


def _naive_squash(s):
    norm = s.norm(dim=-1, keepdim=True)                                   # nan at s = 0
    return norm ** 2 / (1 + norm ** 2) * s / norm


def _eps_outside_the_root(s):
    norm = (s ** 2).sum(dim=-1, keepdim=True).sqrt()                      # sqrt's gradient at 0 is inf: nan
    return norm ** 2 / (1 + norm ** 2) * s / (norm + 1e-8)


def _route_with(softmax_dim=2, shared=False):
    def route(u_hat, iterations):
        from capsnet_lib import squash
        b = torch.zeros(u_hat.shape[1:3] if shared else u_hat.shape[:3])
        for _ in range(iterations):
            c = torch.softmax(b, dim=softmax_dim - (1 if shared else 0))
            v = squash((c.unsqueeze(-1) * u_hat).sum(dim=1))
            agreement = (u_hat * v.unsqueeze(1)).sum(dim=-1)
            b = b + (agreement.mean(0) if shared else agreement)
        return v
    return route


def _component_major(conv_out):                                           # the PrimaryCaps grouping bug
    from capsnet_lib import squash
    B, _, H, W = conv_out.shape
    return squash(conv_out.view(B, 8, 32, H, W).permute(0, 2, 3, 4, 1).reshape(B, -1, 8))


@pytest.mark.parametrize("piece, wrong, named", [
    ("squash", _naive_squash, "squash (Eq. 1) and its gradient"),
    ("squash", _eps_outside_the_root, "squash (Eq. 1) and its gradient"),   # right values, nan gradient at 0
    ("primary_capsules", _component_major, "primary capsules"),
    ("predictions", lambda W, u: torch.einsum("ijdk,bik->bijd", W.flip(1), u), "predictions (Eq. 2)"),
    ("route", _route_with(softmax_dim=1), "routing (Procedure 1)"),       # softmax over the children
    ("route", _route_with(shared=True), "routing (Procedure 1)"),       # logits shared across the batch
    ("decoder_input", lambda v, classes: v.flatten(1), "decoder input"),  # nothing masked
    ("squash", lambda s: s.zero_(), "squash (Eq. 1) and its gradient"),    # zeroes its input, returns it
])
def test_the_capstone_names_the_first_wrong_piece(capstone, piece, wrong, named):
    solved, run = capstone
    with pytest.raises(NotYet, match=re.escape(named) + ": not yet"):
        run({**solved, piece: wrong})


def test_a_forward_that_decodes_the_wrong_capsule_is_caught_after_every_piece_passed(capstone, capsys):
    solved, run = capstone

    def forward(model, images):
        lengths, _ = solved["forward"](model, images)
        v = torch.zeros(len(images), 10, 16)
        return lengths, model.decoder.net(solved["decoder_input"](v, lengths.argmin(dim=1))).view(-1, 1, 28, 28)
    with pytest.raises(NotYet, match="forward: lengths and reconstructions: not yet"):
        run({**solved, "forward": forward})
    assert capsys.readouterr().out.count("correct") == 5


def test_a_forward_that_calls_the_library_model_is_caught(capstone, capsys):
    solved, run = capstone

    def forward(model, images):
        output = model(images)
        return output.lengths, output.reconstructions
    with pytest.raises(NotYet, match="It calls the library's CapsNet instead of your pieces"):
        run({**solved, "forward": forward})
    assert capsys.readouterr().out.count("correct") == 5
    run(solved)                                             # the library's forward works again afterwards
    assert "your CapsNet is cl.CapsNet" in capsys.readouterr().out


def test_an_unanswered_capstone_says_so_once_and_a_missing_piece_is_named(capstone, capsys):
    from capsnet_lib.exercises import CAPSTONE_PIECES
    solved, run = capstone
    first = "squash (Eq. 1) and its gradient: not answered yet"
    run({name: (lambda *args: None) for name in CAPSTONE_PIECES})
    output = capsys.readouterr().out
    assert output.count("not answered yet") == 1 and output.startswith(first)
    run({name: None for name in CAPSTONE_PIECES})          # pieces left as None: the same one line
    output = capsys.readouterr().out
    assert output.count("not answered yet") == 1 and output.startswith(first)
    run({**solved, "route": None})
    output = capsys.readouterr().out
    assert output.count("correct") == 3 and "routing (Procedure 1): not answered yet" in output
    with pytest.raises(ValueError, match="pieces lacks route, forward"):
        run({name: None for name in CAPSTONE_PIECES if name not in ("route", "forward")})


def test_the_capstone_notebook_holds_stubs_only_and_links_its_solution():
    text = "".join("".join(cell["source"]) for cell in _cells(SOLUTIONS.parent / "09_capstone.ipynb"))
    for line in open(SOLUTIONS / "09_capstone.py"):
        if line.strip().startswith("return "):
            assert line.strip() not in text, f"09_capstone shows its solution's line {line.strip()!r}"
    assert "](solutions/09_capstone.py)" in text
