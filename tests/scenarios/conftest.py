import pytest

from rigkit import FAST_FIX


@pytest.fixture
def rig_defaults():
    """The scenarios' test shortcut (rigkit.FAST_FIX): a first fix 2 s after power-on, where
    the product's virtual DUT starts its GPS cold. Scenarios about the first fix say
    @pytest.mark.rig(gps_ttff_s=None) for the receiver's real time (test_sc_power_gps.py)."""
    return dict(FAST_FIX)
