import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """No test may leak a changed default dtype or grad mode into the next one."""
    dtype, grad = torch.get_default_dtype(), torch.is_grad_enabled()
    yield
    torch.set_default_dtype(dtype)
    torch.set_grad_enabled(grad)


def pytest_collection_finish(session):
    """Importing a test module must not change torch's defaults for the rest of the run."""
    torch.set_default_dtype(torch.float32)
