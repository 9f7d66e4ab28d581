"""The registry key file protected by a passphrase: a copy of the technician's files (a lost
laptop, a backup of the home folder) must not open her case data by itself."""
import base64
import json
import stat
import unicodedata

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from cryptography.fernet import Fernet

from boton import registry_crypto as RC
from boton.cli_registry import devices, registry
from boton.errors import InputError, PassphraseError, RegistryKeyError
from boton.registry import CaseData, Registry
from boton.release import release_hash
from boton.safe_write import check_target

MAC = "24:6f:28:00:00:01"
PASS = "caballo bateria grapa"
OTHER = "otra frase bastante larga"


@pytest.fixture
def env(tmp_path, monkeypatch):
    for k in ("BOTON_KEY", RC.PASSPHRASE_ENV, RC.NEW_PASSPHRASE_ENV):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("BOTON_REGISTRY", str(tmp_path / "reg" / "registry.sqlite3"))
    monkeypatch.setenv("BOTON_KEY_FILE", str(tmp_path / "cfg" / "registry.key"))
    monkeypatch.setenv("BOTON_TECHNICIAN", "ana")
    monkeypatch.setattr(RC, "passphrase_prompt", None)    # a library: no terminal to ask on
    monkeypatch.setattr(RC, "SCRYPT_N", 2 ** 14)          # the real cost: test_real_cost
    monkeypatch.setattr(RC, "_unlocked", {})              # one process per command, as the CLI
    return tmp_path / "cfg" / "registry.key"


def case():
    return CaseData(alias="Luna", case_id="AGS/2024/00731", contacts=["+524491112233"])


def with_case(monkeypatch):
    """A device with her case, written with the passphrase; the registry closed again."""
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    with Registry(technician="ana") as reg:
        reg.add_device(MAC)
        reg.assign(MAC, case())
        fingerprint = reg.cipher().fingerprint
    monkeypatch.delenv(RC.PASSPHRASE_ENV)
    RC._unlocked.clear()                            # unlocked once per process: a new command
    return fingerprint


def test_the_key_file_alone_does_not_hold_the_key(env, monkeypatch):
    RC.create_key_file(passphrase=PASS)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    fingerprint = with_case(monkeypatch)
    text = env.read_text()
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    key = RC._unwrap(text, env)                     # what the passphrase opens
    assert key not in text and len(key) == 44
    monkeypatch.delenv(RC.PASSPHRASE_ENV)
    RC._unlocked.clear()
    with Registry() as reg:                         # no passphrase: no case data
        assert reg.get(MAC).has_case                # devices need no key
        with pytest.raises(RegistryKeyError, match="protected by a passphrase.*BOTON_KEY_PASSPHRASE") as e:
            reg.case(MAC)
        assert e.value.exit_code == 2
    monkeypatch.setenv(RC.PASSPHRASE_ENV, "not the passphrase")
    RC._unlocked.clear()
    with Registry() as reg, pytest.raises(RegistryKeyError, match="wrong passphrase.*unchanged"):
        reg.case(MAC)
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    with Registry() as reg:
        assert reg.case(MAC).alias == "Luna" and reg.cipher().fingerprint == fingerprint
    # the same key as a plain key file (or BOTON_KEY) opens the same registry
    monkeypatch.setenv("BOTON_KEY", key)
    with Registry() as reg:
        assert reg.case(MAC).alias == "Luna"


def test_a_terminal_is_asked_again_after_a_wrong_passphrase(env, monkeypatch):
    RC.create_key_file(passphrase=PASS)
    with_case(monkeypatch)
    asked = []

    def prompt(path, attempt):
        asked.append(attempt)
        return PASS if attempt == 1 else "typo typo typo"

    monkeypatch.setattr(RC, "passphrase_prompt", prompt)
    with Registry() as reg:
        assert reg.case(MAC).alias == "Luna"
        assert reg.case(MAC).alias == "Luna"        # asked once per command, not per use
    assert asked == [0, 1]
    asked.clear()
    RC._unlocked.clear()
    monkeypatch.setattr(RC, "passphrase_prompt", lambda path, attempt: asked.append(attempt) or "typo typo typo")
    with Registry() as reg, pytest.raises(RegistryKeyError, match="wrong passphrase.*from the prompt"):
        reg.case(MAC)
    assert asked == [0, 1, 2]                       # three tries, as ssh gives
    monkeypatch.setattr(RC, "passphrase_prompt", lambda path, attempt: None)   # not a terminal
    with Registry() as reg, pytest.raises(RegistryKeyError, match="run on a terminal"):
        reg.case(MAC)


@pytest.mark.parametrize("content", [
    "{not json", "{}", '{"format": "something else"}',
    json.dumps({"format": RC.WRAP_FORMAT, "kdf": "scrypt", "n": 2 ** 30, "r": 8, "p": 1,
                "salt": "AAAA", "key": "x"}),       # would ask scrypt for 128 GB
    json.dumps({"format": RC.WRAP_FORMAT, "kdf": "scrypt", "n": 2 ** 14, "r": 8, "p": 1,
                "salt": "not base64!", "key": "x"}),
    json.dumps({"format": RC.WRAP_FORMAT, "kdf": "scrypt", "n": 2 ** 14, "r": 8, "p": 1,
                "salt": "AAAA", "key": 5}),
])
def test_a_damaged_key_file_is_one_line(env, monkeypatch, content):
    env.parent.mkdir(parents=True)
    env.write_text(content)
    env.chmod(0o600)
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    with pytest.raises(RegistryKeyError, match="is damaged.*backup"):
        RC.load_key()


WRAPPED = json.loads(RC.wrap_key(Fernet.generate_key().decode(), PASS))
FIELD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 2 ** 21), st.floats(),
                         st.text(max_size=20), st.lists(st.integers(), max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changed=st.dictionaries(st.sampled_from(sorted(WRAPPED)), FIELD_VALUES, max_size=4),
       raw=st.binary(max_size=60))
@example(changed={"n": float("inf")}, raw=b"")
@example(changed={"r": True, "salt": None}, raw=b"\xff")
def test_any_key_file_content_is_a_key_or_one_line(env, monkeypatch, changed, raw):
    # found so: "n": Infinity (valid JSON to Python) raised OverflowError, a traceback
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    env.parent.mkdir(parents=True, exist_ok=True)
    for content in (json.dumps({**WRAPPED, **changed}).encode(), b"{" + raw):
        env.write_bytes(content)
        env.chmod(0o600)
        RC._unlocked.clear()
        try:
            assert len(RC.load_key()[1]) == 32
        except RegistryKeyError:
            pass


def test_a_short_passphrase_is_refused(env):
    with pytest.raises(InputError, match="at least 10 characters") as e:
        RC.create_key_file(passphrase="  123456  ")
    assert e.value.exit_code == 2 and not env.exists()


def test_the_passphrase_changes_and_comes_off_the_key_stays(env, monkeypatch):
    RC.create_key_file(passphrase=PASS)
    fingerprint = with_case(monkeypatch)
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    RC.rewrap_key_file(passphrase=OTHER)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600 and list(env.parent.iterdir()) == [env]
    with Registry() as reg, pytest.raises(RegistryKeyError, match="wrong passphrase"):
        reg.case(MAC)                               # the old passphrase no longer opens it
    monkeypatch.setenv(RC.PASSPHRASE_ENV, OTHER)
    with Registry() as reg:
        assert reg.case(MAC).alias == "Luna" and reg.cipher().fingerprint == fingerprint
    RC.rewrap_key_file(passphrase=None)
    monkeypatch.delenv(RC.PASSPHRASE_ENV)
    assert len(env.read_text().strip()) == 44
    with Registry() as reg:
        assert reg.case(MAC).alias == "Luna" and reg.cipher().fingerprint == fingerprint


def test_a_copy_of_a_protected_key_file_is_never_written_over(env, tmp_path):
    RC.create_key_file(passphrase=PASS)
    copy = tmp_path / "usb" / "key-backup"
    copy.parent.mkdir()
    copy.write_bytes(env.read_bytes())
    with pytest.raises(InputError, match="registry key protected by a passphrase"):
        check_target(copy, force=True)


def test_real_cost(monkeypatch):
    assert RC.SCRYPT_N == 2 ** 17                   # OWASP's scrypt cost, as shipped
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    text = RC.wrap_key(Fernet.generate_key().decode(), PASS)
    assert json.loads(text)["n"] == 2 ** 17
    assert len(RC._unwrap(text, "the test")) == 44


# ----------------------------------------------------------------------------- CLI
def run(group, *args, code=0, env=None):
    RC._unlocked.clear()                            # each command is a process of its own
    res = CliRunner().invoke(group, list(args), env=env, catch_exceptions=False)
    assert res.exit_code == code, (res.stdout, res.stderr)
    return res


def test_cli_init_key_with_a_passphrase_and_what_info_says(env):
    out = run(registry, "init-key", "--passphrase", code=2).stderr
    assert "typed on a terminal" in out and RC.NEW_PASSPHRASE_ENV in out and not env.exists()
    out = run(registry, "init-key", env={RC.NEW_PASSPHRASE_ENV: PASS}).stdout
    assert "protected by a passphrase" in " ".join(out.split())
    assert RC.is_wrapped(env.read_text())
    info = json.loads(run(registry, "info", "--json").stdout)
    assert info["key_file_passphrase"] is True and info["key_ok"] is False
    assert "protected by a passphrase" in info["key_problem"]
    info = json.loads(run(registry, "info", "--json", env={RC.PASSPHRASE_ENV: PASS}).stdout)
    assert info["key_ok"] and info["key_source"].endswith("(passphrase)")
    run(devices, "add", MAC)
    assign = ["assign", MAC, "--alias", "Luna", "--case-id", "X1", "--contact", "449 111 2233",
              "--order-ends", "2031-01-31"]
    assert "protected by a passphrase" in run(devices, *assign, code=2).stderr
    run(devices, *assign, env={RC.PASSPHRASE_ENV: PASS})


def test_cli_init_key_without_a_passphrase_says_so(env):
    out = " ".join(run(registry, "init-key").stdout.split())     # not a terminal: as before
    assert "without a passphrase" in out and "key-passphrase" in out
    assert len(env.read_text().strip()) == 44


def test_cli_key_passphrase_adds_changes_and_removes(env):
    run(registry, "init-key", "--no-passphrase", env={RC.NEW_PASSPHRASE_ENV: PASS})
    assert not RC.is_wrapped(env.read_text())        # --no-passphrase wins
    assert "typed on a terminal" in run(registry, "key-passphrase", code=2).stderr
    out = run(registry, "key-passphrase", env={RC.NEW_PASSPHRASE_ENV: PASS}).stdout
    assert "now protected by a passphrase" in " ".join(out.split())
    assert "wrong passphrase" in run(registry, "key-passphrase", code=2,
                                     env={RC.PASSPHRASE_ENV: OTHER, RC.NEW_PASSPHRASE_ENV: OTHER}).stderr
    assert "too short" in run(registry, "key-passphrase", code=2,
                              env={RC.PASSPHRASE_ENV: PASS, RC.NEW_PASSPHRASE_ENV: "short"}).stderr
    run(registry, "key-passphrase", env={RC.PASSPHRASE_ENV: PASS, RC.NEW_PASSPHRASE_ENV: OTHER})
    assert json.loads(run(registry, "info", "--json", env={RC.PASSPHRASE_ENV: OTHER}).stdout)["key_ok"]
    out = run(registry, "key-passphrase", "--remove", env={RC.PASSPHRASE_ENV: OTHER}).stdout
    assert "without a passphrase" in " ".join(out.split())
    assert not RC.is_wrapped(env.read_text())


def test_a_passphrase_that_is_not_utf8_in_the_environment(env, monkeypatch):
    odd = "clave de la oficina \udcff"                  # a Latin-1 byte in a UTF-8 locale
    monkeypatch.setenv(RC.NEW_PASSPHRASE_ENV, odd)
    run(registry, "init-key")
    monkeypatch.setenv(RC.PASSPHRASE_ENV, odd)
    assert json.loads(run(registry, "info", "--json").stdout)["key_ok"]


PASS_NFC = "contraseña de la oficina de Madero"           # ñ as one code point (most keyboards)
PASS_NFD = unicodedata.normalize("NFD", PASS_NFC)        # n + combining tilde (macOS input, some paste)


@pytest.mark.parametrize("set_as, typed_as", [(PASS_NFC, PASS_NFD), (PASS_NFD, PASS_NFC)])
def test_a_passphrase_typed_in_the_other_unicode_form_opens_the_key(env, monkeypatch, set_as, typed_as):
    # the same words, other bytes: a technician's laptop and the office PC disagree on
    # how to type "ñ", and her case would be locked for the one that set it the other way
    assert set_as != typed_as
    RC.create_key_file(passphrase=set_as)
    monkeypatch.setenv(RC.PASSPHRASE_ENV, typed_as)
    assert len(RC._unwrap(env.read_text(), env)) == 44


def test_a_key_wrapped_before_normalising_still_opens_in_both_forms(env, monkeypatch):
    # key files written by earlier versions hold the bytes as typed (here NFD)
    salt = b"s" * 16
    token = RC._kek(PASS_NFD, salt, 2 ** 14, 8, 1).encrypt(Fernet.generate_key())
    env.parent.mkdir(parents=True)
    env.write_text(json.dumps({"format": RC.WRAP_FORMAT, "kdf": "scrypt", "n": 2 ** 14, "r": 8,
                               "p": 1, "salt": base64.b64encode(salt).decode(),
                               "key": token.decode()}) + "\n")
    for typed in (PASS_NFD, PASS_NFC):
        RC._unlocked.clear()
        monkeypatch.setenv(RC.PASSPHRASE_ENV, typed)
        assert len(RC._unwrap(env.read_text(), env)) == 44


# ----------------------------------------------------------- before the board is opened
NOWHERE = "socket://127.0.0.1:9"      # nothing listens: opening the port would fail, exit 3


def _a_delivered_case():
    with Registry(technician="ana") as reg:
        reg.add_device(MAC, board="tcall_sim800l_axp192")
        reg.assign(MAC, case())
        reg.record_deploy(MAC, "ab" * 32)
        reg.record_provision(MAC, "cd" * 32)
        reg.record_test_call(MAC, True, "ok", firmware_hash=release_hash("tcall_sim800l_axp192"),
                             board="tcall_sim800l_axp192")


@pytest.mark.parametrize("command", [
    ["provision", "--port", NOWHERE, "--c4", "449 910 0000"],
    ["test-call", "--port", NOWHERE],
    ["devices", "deliver", "BS-0001", "--port", NOWHERE],
])
def test_a_mistyped_passphrase_stops_before_the_board_is_opened(env, monkeypatch, command):
    # registry first: as a broken registry, a passphrase that does not open the key refuses
    # before the port is opened (a board in a session holds its watchdog for the host)
    from boton.cli import main

    RC.create_key_file(passphrase=PASS)
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    _a_delivered_case()
    monkeypatch.setenv("BOTON_PIN", "482915")
    monkeypatch.setenv(RC.PASSPHRASE_ENV, "not the passphrase")
    err = run(main, *command, code=2).stderr
    assert "wrong passphrase" in err and "connect" not in err
    monkeypatch.delenv(RC.PASSPHRASE_ENV)           # not typed at all (no terminal): the same
    assert "protected by a passphrase" in run(main, *command, code=2).stderr


def test_a_wipe_does_not_go_on_searching_for_less_after_a_mistyped_passphrase(env, monkeypatch):
    # Without her case the flash is searched only for what the button held. For a missing
    # key that is the best there is (a warning); a passphrase can be typed again.
    from boton.registry_workflow import plan_wipe

    RC.create_key_file(passphrase=PASS)
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    _a_delivered_case()
    with Registry(technician="ana") as reg:
        reg.deliver(MAC)
        reg.return_device(MAC)
    monkeypatch.setenv(RC.PASSPHRASE_ENV, "not the passphrase")
    RC._unlocked.clear()
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        plan_wipe(MAC)
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    RC._unlocked.clear()
    assert [c.alias for c in plan_wipe(MAC).cases] == ["Luna"]
    monkeypatch.setenv("BOTON_KEY_FILE", str(env.with_name("no-such.key")))   # no key: as before
    plan = plan_wipe(MAC)
    assert plan.cases == [] and "no registry key" in plan.case_unreadable


def test_a_key_file_nested_beyond_pythons_parser_is_called_damaged(env, monkeypatch):
    # a file starting with "{" nested 100,000 deep: RecursionError from json.loads, a
    # traceback from `registry info` and `devices show --reveal`
    RC.create_key_file(passphrase=PASS)
    with_case(monkeypatch)
    env.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    damaged = f"key file {env} is damaged: it is neither a key nor a key protected by a passphrase"
    monkeypatch.setenv(RC.PASSPHRASE_ENV, PASS)
    res = CliRunner().invoke(devices, ["show", MAC, "--reveal"], catch_exceptions=False)
    assert res.exit_code == 2 and res.stderr.startswith(f"error: {damaged}") and res.stderr.count("\n") == 1
    res = CliRunner().invoke(registry, ["info"], catch_exceptions=False)
    assert res.exit_code == 0 and f"key problem: {damaged}" in res.stdout


@pytest.mark.parametrize("typed, code, said", [
    (KeyboardInterrupt, 130, "interrupted (Ctrl-C)"),
    (EOFError, 2, "no answer: the input ended at a question"),
])
def test_ctrl_c_or_closed_input_at_the_passphrase_prompt_is_one_line_and_a_documented_code(
        env, monkeypatch, capsys, typed, code, said):
    # click turns both into its Abort at a prompt: "Aborted!" and exit 1, which no list has.
    # Run as the console runs it (CliRunner puts its own prompt reader in place)
    import click.termui

    import boton.cli_registry as cli_registry
    RC.create_key_file(passphrase=PASS)
    with_case(monkeypatch)

    def key_pressed(prompt=""):
        raise typed
    monkeypatch.setattr(cli_registry, "_interactive", lambda: True)
    monkeypatch.setattr(cli_registry.registry_crypto, "passphrase_prompt", cli_registry._ask_passphrase)
    monkeypatch.setattr(click.termui, "hidden_prompt_func", key_pressed)
    with pytest.raises(SystemExit) as ended:
        devices.main(["show", MAC, "--reveal"], prog_name="boton devices")
    out = capsys.readouterr()
    assert ended.value.code == code, out
    assert "error: " + said in " ".join(out.err.split()), out.err
    assert "Aborted" not in out.err + out.out and "Luna" not in out.err + out.out


def test_a_key_file_that_is_a_fifo_is_refused_not_waited_on(env):
    import os
    import threading
    env.parent.mkdir(mode=0o700)
    os.mkfifo(env, 0o600)
    got = []

    def read():
        try:
            RC.read_key_file(env)
        except RegistryKeyError as e:
            got.append(str(e))
    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10)
    assert got == [f"key file {env} is not a regular file"]
