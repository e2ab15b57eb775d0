"""One solution to the exercise of notebook 02_primary_capsules.ipynb. Try your own first."""


def receptive_field(y, x):
    """(top, bottom, left, right), inclusive, of the input pixels seen at PrimaryCaps position (y, x)."""
    # PrimaryCaps position p reads Conv1 rows 2p .. 2p + 8; Conv1 row r reads input rows r .. r + 8
    return 2 * y, 2 * y + 16, 2 * x, 2 * x + 16
