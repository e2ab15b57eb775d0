"""Suite-wide settings. The notebooks' kernels inherit this process's environment."""
import os

# The series runs in smoke mode under the test suite: the training notebook trains for a few
# steps instead of minutes. Evaluation of the pretrained model still uses the full test set.
os.environ.setdefault("CAPSNET_SMOKE", "1")
