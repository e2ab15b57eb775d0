"""The paper's figures and what they measure.

- viz: Figure 3 (reconstructions), Figure 4 (perturbation grid) and Figure 5 (overlapping pairs);
- dimensions: what each DigitCaps dimension does, measured, with its controls;
- panel: the Figure 4 slider widget.
"""
