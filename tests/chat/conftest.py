import pytest

from chat import turns


@pytest.fixture(autouse=True)
def _fresh_turn_state():
    """Each test starts with no turn runners in this process (and leaves none behind:
    the modules' own fixtures wait for running turns before this one resets)."""
    turns.state.reset()
    yield
    turns.state.reset()
