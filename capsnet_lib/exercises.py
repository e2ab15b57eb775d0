"""Checks for the notebooks' exercises: a clear verdict on the reader's answer.

Each exercise cell starts as a stub that returns None; its check then says "not answered yet"
instead of failing, so "Run all" runs through a notebook. A wrong answer raises NotYet, naming what
differs and hinting why. One solution per exercise lives in notebooks/solutions/, out of the
notebook, where no viewer shows it before the reader asks for it.
"""
import torch


class NotYet(AssertionError):
    """The reader's answer is not right yet; the message says what differs and gives a hint."""


def check(what, answer, expected, hint="", atol=1e-5):
    """Compare the reader's `answer` with `expected` (tensors, numbers, or tuples of them).

    Prints a line that says it is right and returns True, or raises NotYet saying what is wrong and
    hinting why. An answer of None (a stub not filled in yet) prints "not answered yet" and returns False.
    """
    if answer is None:
        print(f"{what}: not answered yet. Fill in the exercise's cell (it returns None so far) and run this "
              "cell again.")
        return False
    problem = _difference(answer, expected, atol)
    if problem:
        raise NotYet(f"{what}: not yet. {problem}" + (f" Hint: {hint}" if hint else ""))
    print(f"{what}: correct")
    return True


def _difference(answer, expected, atol):
    if isinstance(expected, torch.Tensor):
        if not isinstance(answer, torch.Tensor):
            return f"expected a tensor, got {type(answer).__name__}."
        if answer.is_complex() and not expected.is_complex():
            return f"expected a real tensor, got a complex one ({answer.dtype})."
        if answer.shape != expected.shape:
            return f"expected shape {tuple(expected.shape)}, got {tuple(answer.shape)}."
        if not torch.isfinite(answer).all():
            return "the answer holds nan or inf."
        gap = (answer.float() - expected.float()).abs().max().item()
        return "" if gap <= atol else f"the largest difference is {gap:.3g} (allowed {atol:g})."
    if isinstance(expected, (tuple, list)):
        if not isinstance(answer, (tuple, list)) or len(answer) != len(expected):
            return f"expected {len(expected)} values, got {answer!r}."
        return next((p for p in (_difference(a, e, atol) for a, e in zip(answer, expected)) if p), "")
    if isinstance(answer, (str, bytes)):
        return f"expected the number {expected!r}, got the text {answer!r}."
    if isinstance(answer, torch.Tensor):
        answer = answer.item() if answer.numel() == 1 else answer
    try:
        gap = abs(float(answer) - float(expected))
    except (TypeError, ValueError):
        return f"expected {expected!r}, got {answer!r}."
    return "" if gap <= atol * max(1.0, abs(float(expected))) else f"expected {expected}, got {answer}."


def _masked(capsules, classes):
    """(B, 10, 16) capsules, (B,) classes -> (B, 160): each image's named capsule, the other nine zeroed."""
    return (capsules * torch.nn.functional.one_hot(classes, 10).to(capsules.dtype)[..., None]).flatten(1)


def _isolated(answer_fn):
    """The reader's function, called on copies of its tensor arguments: an answer that changes its
    input in place (zeroes it, or reshapes it with unsqueeze_) cannot change the expected value
    computed from the originals, nor crash on a view."""
    if answer_fn is None:
        return None
    return lambda *args: answer_fn(*(a.clone() if isinstance(a, torch.Tensor) else a for a in args))


# The notebooks' exercises, each checked on the cases where the plausible wrong answers differ.
# Each stops at its first unanswered case: one "not answered yet" line, not one per case.

def check_primary_capsule_count(primary_capsule_count, model, sizes=range(17, 65)):
    """Notebook 00: capsules for S x S images, against the model's own convolutions, at every size
    from the smallest that gives a capsule (17) to 64: a floored stride, an unfloored one, an
    off-by-one and a rounding that agrees at some sizes all differ at one of them."""
    for size in sizes:
        with torch.no_grad():
            grid = model.primary_caps.conv(torch.relu(model.conv1(torch.zeros(1, 1, size, size)))).shape[-1]
        answer = primary_capsule_count(size)
        if answer is None or _difference(answer, 32 * grid ** 2, atol=0):
            check(f"primary capsules of a {size}x{size} image", answer, 32 * grid ** 2,
                  hint="a convolution with kernel k and stride s turns n pixels into (n - k) // s + 1")
            return
    print(f"primary capsules of every image size from {sizes[0]}x{sizes[0]} to {sizes[-1]}x{sizes[-1]}: correct")


def check_unsquash(unsquash):
    """Notebook 01: unsquash(squash(s)) == s for 500 vectors of lengths 0.3 to 8 (a length formula
    that is right only near length 1, or a lost direction, fails), then for a (4, 50, 8) batch of
    capsule sets, where a norm over the wrong axis fails."""
    from .capsules import squash
    generator = torch.Generator().manual_seed(1)
    s = torch.randn(500, 8, generator=generator) * torch.linspace(0.1, 3, 500)[:, None]
    hint = ("the direction is v / |v|; for the length, solve |v| = n^2 / (1 + n^2) for n; "
            "capsules lie along the last axis")
    if check("unsquash(squash(s)) == s", unsquash(squash(s)), s, atol=1e-3, hint=hint):
        check("unsquash(squash(s)) == s for (4, 50, 8) capsules", unsquash(squash(s.view(10, 50, 8)[:4])),
              s.view(10, 50, 8)[:4], atol=1e-3, hint=hint)


def check_receptive_field(receptive_field, model, positions=((0, 0), (2, 4), (5, 5))):
    """Notebook 02: (top, bottom, left, right) against autograd, which finds the input pixels whose
    gradient from the capsules at a grid position is not zero. Positions off the diagonal and away
    from the corner tell rows from columns and a stride of 2 from 1."""
    generator = torch.Generator().manual_seed(2)
    for y, x in positions:
        probe = torch.rand(1, 1, 28, 28, generator=generator, requires_grad=True)
        seen = model.primary_caps(torch.relu(model.conv1(probe)))               # (1, 1152, 8), t*36 + y*6 + x
        seen.view(1, 32, 6, 6, 8)[0, :, y, x].sum().backward()
        rows, cols = probe.grad[0, 0].abs().sum(1).nonzero(), probe.grad[0, 0].abs().sum(0).nonzero()
        if not check(f"receptive field of position ({y}, {x})", receptive_field(y, x),
                     (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()),
                     hint="a stride-2 layer's position p starts at row 2p of the layer below; "
                          "each 9x9 kernel adds 8 rows"):
            return


def check_agreement(agreement):
    """Notebook 03: u_hat . v for every child and parent, against an einsum, then the worked number."""
    generator = torch.Generator().manual_seed(3)
    u_hat, v = torch.randn(2, 1152, 10, 16, generator=generator), torch.randn(2, 10, 16, generator=generator)
    agreement = _isolated(agreement)
    if not check("agreement", agreement(u_hat, v), torch.einsum("bijd,bjd->bij", u_hat, v), atol=1e-4,
                 hint="v has no child axis: unsqueeze it at dim 1 so it broadcasts over the 1,152 children"):
        return
    along, parent = torch.zeros(1, 1, 1, 16), torch.zeros(1, 1, 16)
    along[..., 0], parent[..., 0] = 2.0, 0.9
    check("the agreement of a length-2 prediction along a parent of length 0.9", agreement(along, parent), 1.8)


def check_all_predictions(all_predictions, layer):
    """Notebook 04: every u_hat_j|i = W_ij u_i (Eq. 2) against the layer's own batched product."""
    generator = torch.Generator().manual_seed(4)
    u = torch.randn(2, layer.num_in, layer.in_dim, generator=generator)
    W = layer.W.detach().view(layer.num_in, layer.num_out, layer.out_dim, layer.in_dim)
    with torch.no_grad():
        check("all predictions", _isolated(all_predictions)(W, u), layer.predictions(u), atol=1e-5,
              hint="the sum runs over the 8 components k of u_i; i, j and d stay")


@torch.no_grad()
def check_decoder_input(decoder_input, model, images, labels):
    """Notebook 05: the masked, flattened (B, 160) capsules, once with the true labels and once with
    labels the model did not predict (masking by the prediction instead of the label passes the first
    and fails the second). Any float dtype is accepted; another shape, (B, 10, 16) or (B, 1, 160), is not."""
    output = model(images)
    predicted = output.lengths.argmax(dim=1)
    not_predicted = (predicted + 1 + torch.arange(len(labels)) % 9) % 10        # never the prediction
    yours = _isolated(decoder_input)
    for what, given in (("true labels", labels), ("labels the model did not predict", not_predicted)):
        if not check(f"decoder input, {what}", yours(output.digit_caps, given), _masked(output.digit_caps, given),
                     atol=1e-5,
                     hint="keep the capsule each *label* names (not the longest one): one_hot(labels) is (B, 10); "
                          "give it a trailing axis to multiply the (B, 10, 16) capsules, then flatten to (B, 160)"):
            return


def check_lr_at(lr_at, config, steps=(1, 1000, 2000, 3000, 5000)):
    """Notebook 06: lr_at(step) against the real schedule, to one part in a million. Steps between
    multiples of 2,000 tell a continuous decay from a staircase one."""
    from .training.schedules import make_schedule
    from .training.loop import make_optimizer

    optimizer = make_optimizer(torch.nn.Linear(1, 1), config)
    schedule = make_schedule(optimizer, config)
    for step in range(1, max(steps) + 1):
        optimizer.step()
        schedule.step()
        lr = optimizer.param_groups[0]["lr"]
        if step in steps and not check(f"lr after {step} steps", lr_at(step), lr, atol=1e-6 * lr,
                                       hint="the exponent is step / 2000, not a whole number of decays"):
            return       # a relative tolerance of 1e-6: one step too many or too few changes the lr by 2e-5


@torch.no_grad()
def check_per_image_error(per_image_error, model, images):
    """Notebook 07: one summed squared error per image, against the training loss of each image alone
    (a batch sum or a pixel mean fails)."""
    from .losses import reconstruction_loss
    recon = model(images).reconstructions
    one_by_one = torch.stack([reconstruction_loss(recon[k:k + 1], images[k:k + 1]) for k in range(len(images))])
    check("per-image reconstruction error", _isolated(per_image_error)(images, recon), one_by_one, atol=1e-4,
          hint="sum over every pixel of one image, not over the batch; mean would be 784 times too small")


def check_centre_x(centre_x, images):
    """Notebook 08: the intensity-weighted mean column of (N, 28, 28) images, against the statistic
    the dimension measurement uses (the mean row, or an unnormalised sum, fails)."""
    from .figures.dimensions import STATISTICS, image_statistics
    check("centre_x", _isolated(centre_x)(images), image_statistics(images)[:, STATISTICS.index("centre_x")], atol=1e-4,
          hint="multiply each pixel by its column index (the last axis), sum, divide by the summed intensity")


# The capstone (notebook 09): the reader's own forward pass, piece by piece, against cl.CapsNet.

def _with_gradient(squash_fn, s):
    """(squash_fn(s), d sum(squash_fn(s)) / ds) for s (N, 16) holding a zero vector; None for a stub.
    A squash whose value is right but whose gradient is nan at s = 0 (eps outside the root) would
    stop training at the first silent capsule."""
    with torch.enable_grad():
        s = s.clone().requires_grad_()
        v = squash_fn(s)
        if v is None:
            return None
        if isinstance(v, torch.Tensor) and v.requires_grad:
            v.sum().backward()
        return v.detach() if isinstance(v, torch.Tensor) else v, s.grad


def _without_library_forward(forward, model, images):
    """The reader's forward, run while the library's own forward passes (CapsNet, PrimaryCaps, DigitCaps,
    Decoder) refuse to run: it must compose the reader's pieces, not call model(images)."""
    from .capsules import DigitCaps, PrimaryCaps
    from .model import CapsNet, Decoder

    def refuse(module, *args, **kwargs):
        raise NotYet(f"forward: lengths and reconstructions: not yet. It calls the library's {type(module).__name__} "
                     "instead of your pieces. Hint: use only the model's weights (conv1, primary_caps.conv, "
                     "digit_caps.W, decoder.net) with your squash, primary_capsules, predictions, route, decoder_input")
    classes = (CapsNet, PrimaryCaps, DigitCaps, Decoder)
    saved = [cls.forward for cls in classes]
    try:
        for cls in classes:
            cls.forward = refuse
        return forward(model, images)
    finally:
        for cls, original in zip(classes, saved):
            cls.forward = original

CAPSTONE_PIECES = ("squash", "primary_capsules", "predictions", "route", "decoder_input", "forward")


@torch.no_grad()
def check_capstone(pieces, model, images):
    """Notebook 09: `pieces` maps each name in CAPSTONE_PIECES to the reader's function. Each piece
    is fed the library's own input to it, so a mistake is named where it is made and not where it
    shows; then the reader's whole forward pass must give the model's lengths and reconstructions.
    Stops at the first piece not answered (one line) or wrong (NotYet naming the piece)."""
    from .capsules import dynamic_routing, squash
    missing = [name for name in CAPSTONE_PIECES if name not in pieces]
    if missing:
        raise ValueError(f"pieces lacks {', '.join(missing)}: pass a dict with all of {', '.join(CAPSTONE_PIECES)}")
    pieces = {name: _isolated(pieces[name]) for name in CAPSTONE_PIECES}    # each called on copies
    generator = torch.Generator().manual_seed(9)
    s = torch.randn(64, 16, generator=generator) * torch.linspace(0.05, 4, 64)[:, None]
    s[0] = 0.0                                                      # a silent capsule: no nan
    conv_out = model.primary_caps.conv(torch.relu(model.conv1(images)))          # (B, 256, 6, 6)
    u = model.primary_caps.to_capsules(conv_out)                                # (B, 1152, 8)
    u_hat = model.digit_caps.predictions(u)                                     # (B, 1152, 10, 16)
    v, _ = dynamic_routing(u_hat, model.digit_caps.routing_iterations)          # (B, 10, 16)
    classes = (v.norm(dim=-1).argmax(dim=1) + 3) % 10                           # not the prediction
    W = model.digit_caps.W.view(model.digit_caps.num_in, model.digit_caps.num_out, model.digit_caps.out_dim,
                                model.digit_caps.in_dim)                        # (1152, 10, 16, 8): W_ij
    output = model(images)
    steps = [                                       # one per piece, in CAPSTONE_PIECES' order
        ("squash (Eq. 1) and its gradient", lambda: _with_gradient(pieces["squash"], s),
         lambda: _with_gradient(squash, s),
         "|v| = |s|^2 / (1 + |s|^2) along s / |s|; put a small eps inside the square root so s = 0 gives 0, "
         "and a finite gradient, not nan"),
        ("primary capsules", lambda: pieces["primary_capsules"](conv_out), lambda: u,
         "channel t * 8 + k is component k of capsule type t; capsule index t * 36 + y * 6 + x; then squash"),
        ("predictions (Eq. 2)", lambda: pieces["predictions"](W, u), lambda: u_hat,
         "u_hat[b, i, j] = W[i, j] @ u[b, i]: one einsum, summing over the 8 components of u_i"),
        ("routing (Procedure 1)", lambda: pieces["route"](u_hat, model.digit_caps.routing_iterations), lambda: v,
         "b starts at 0 for every image; c = softmax of b over the parents j (dim 2 of (B, I, J)); "
         "s_j = sum_i c_ij u_hat_j|i; v = squash(s); b += u_hat . v"),
        ("decoder input", lambda: pieces["decoder_input"](v, classes), lambda: _masked(v, classes),
         "keep the capsule each class names, zero the other nine, flatten to (B, 160)"),
        ("forward: lengths and reconstructions", lambda: _without_library_forward(pieces["forward"], model, images),
         lambda: (output.lengths, output.reconstructions),
         "compose your pieces with the model's weights: conv1, relu, primary_caps.conv, digit_caps.W, "
         "then decoder.net on the input masked by the *predicted* class"),
    ]
    for name, (what, yours, expected, hint) in zip(CAPSTONE_PIECES, steps):
        if not check(what, None if pieces[name] is None else yours(), expected(), hint=hint, atol=1e-4):
            return
    print(f"your CapsNet is cl.CapsNet: the same lengths and reconstructions on {len(images)} test digits")
