"""The digits each section trains and tests on.

- mnist: the MNIST files, the 55,000 / 5,000 / 10,000 split, batches and the +-2 pixel shifts (Sec. 5);
- translated: 40x40 translated digits and the affine test set (Sec. 5.2);
- multimnist: overlapping pairs and their two-digit loss and score (Sec. 6);
- tasks: each dataset's loss, batches and scoring behind one name (--dataset).
"""
from .mnist import (DATA_ENV_VAR, TRAIN_SIZE, VALIDATION_SIZE, batches, data_root, load_mnist, random_shift,
                    to_float)

__all__ = ["DATA_ENV_VAR", "TRAIN_SIZE", "VALIDATION_SIZE", "batches", "data_root", "load_mnist", "random_shift",
           "to_float"]
