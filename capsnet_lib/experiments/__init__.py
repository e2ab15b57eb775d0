"""The paper's experiments, as library functions the commands run.

- sweep: many independent trainings at once (seeds or settings), resumable;
- table1: Table 1's rows, one test evaluation per finished run, the summary over seeds;
- robustness: Sec. 5.2's accuracy against rotation, shear and scale on affine-transformed digits.
"""
