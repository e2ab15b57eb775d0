"""One solution to the exercise of notebook 00_introduction.ipynb. Try your own first."""


def primary_capsule_count(size):
    """Primary capsules of a size x size image: 32 types at every position of the PrimaryCaps grid."""
    conv1 = size - 9 + 1                     # 9x9, stride 1, no padding
    grid = (conv1 - 9) // 2 + 1              # 9x9, stride 2, no padding
    return 32 * grid * grid
