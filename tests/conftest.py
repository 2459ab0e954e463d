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


@pytest.fixture
def one_thread():
    """One torch thread for the test, restored after: tiny tensors run fastest on one thread (a second OpenMP
    thread only adds hand-offs, which cost seconds per test on a loaded machine). Opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_finish(session):
    """Importing a test module must not change torch's defaults for the rest of the run."""
    torch.set_default_dtype(torch.float32)
