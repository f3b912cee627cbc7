import os

import pytest
import torch

# Keep tests on the machine's 2 cores without oversubscription, and deterministic.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def mnist():
    from learned_lr.tasks import load_mnist

    return load_mnist()
