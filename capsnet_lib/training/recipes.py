"""Named training recipes: the paper's schedule, and a fast one for a laptop.

A recipe fills the optimisation settings a run does not set itself (`--recipe fast --lr 2e-3`
changes only the lr). The model and the loss are the paper's in every recipe. The search that
chose `fast`, every candidate with its numbers, is in results/recipe_search.csv.

- paper: Adam at 1e-3, x0.96 every 2,000 steps (the authors' code), batch 128, 30 epochs.
- fast: Adam peaking at 3e-3 after a 200-step linear warm-up, then a cosine to 0 at the last step
  of 6 epochs, batch 128: the lr anneals within the budget instead of staying near its start.
"""
RECIPES = {
    "paper": dict(epochs=30, batch_size=128, lr=1e-3, schedule="exponential", lr_decay=0.96, lr_decay_steps=2000,
                  warmup_steps=0),
    "fast": dict(epochs=6, batch_size=128, lr=3e-3, schedule="cosine", lr_decay=0.96, lr_decay_steps=2000,
                 warmup_steps=200),
}


def check_recipe(name):
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {name!r}")


def recipe_settings(name, **changes):
    """The recipe's settings with `changes` on top; a change of None is no change (an unset flag)."""
    check_recipe(name)
    return {**RECIPES[name], **{k: v for k, v in changes.items() if v is not None}}
