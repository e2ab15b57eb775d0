import pytest
import torch

from capsnet_lib.data.mnist import data_root, load_mnist, mnist_is_present, to_float
from capsnet_lib.training.runtime import tune_cpu_allocator

tune_cpu_allocator()    # as the training command does for its process (runtime.py says why)


@pytest.fixture(scope="session")
def mnist_root():
    """The MNIST root the suite reads ($CAPSNET_DATA or ./data); tests never download."""
    root = data_root()
    if not mnist_is_present(root):
        pytest.fail(f"MNIST is not in {root}/MNIST/raw. Run `python -m capsnet_lib.download` once "
                    "(it downloads), or set CAPSNET_DATA to a folder that holds MNIST/raw.")
    return root


@pytest.fixture(scope="session")
def test_digits(mnist_root):
    """The first 200 test digits as float images (200, 1, 28, 28) and labels (200,)."""
    images, labels = load_mnist("test", mnist_root, download=False)
    return to_float(images[:200]), labels[:200]


@pytest.fixture
def seeded():
    torch.manual_seed(0)
