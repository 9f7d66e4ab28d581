"""Hardware-only checks that open a HIL session: on the rig they would only test the rig."""
import pytest

pytestmark = pytest.mark.hil


def test_reference_modem_is_registered_with_usable_signal(network):
    ref = network.ref
    assert ref.registered(), "the reference modem is not registered: check its SIM and antenna"
    rssi = ref.signal()
    assert rssi is not None and 8 <= rssi <= 31, f"reference modem signal CSQ {rssi}: move the antenna"


def test_board_runs_this_checkout_of_the_firmware(dut, faults):
    # The dut fixture already refused a board whose files are not this release's
    # (boton.hil.dut.check_release); here the board also boots it: its boot entry names
    # this checkout's version, and the SIM answers.
    from boton.frozen import firmware_version

    mark = dut.mark()
    faults.esp32_reset()
    dut.wait_log("boot", since=mark, timeout=60)
    assert dut.logged("boot", since=mark)[0] == firmware_version(), "deploy this checkout: boton deploy --port ..."
    dut.wait_ready(since=mark)
    assert "sim_problem" not in [e for e, _ in dut.log(since=mark)], dut.log(since=mark)
