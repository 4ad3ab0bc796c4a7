"""Config fragments, profiles and `harness kconfig check` (pure, and the CLI on small files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import cli
from harness.boot import kconfig
from harness.errors import UsageError


def _frag(source: str, **options: str) -> kconfig.Fragment:
    return kconfig.Fragment(source, {f"CONFIG_{k}": v for k, v in options.items()})


def test_merge_later_wins_and_says_so() -> None:
    wanted, notes = kconfig.merge([_frag("a", X="y", Y="m"), _frag("b", X="n", Z="y"),
                                   _frag("c", Y="m")])
    assert {n: (w.value, w.source) for n, w in wanted.items()} == {
        "CONFIG_X": ("n", "b"), "CONFIG_Y": ("m", "c"), "CONFIG_Z": ("y", "b")}
    assert notes == ["CONFIG_X: y (a) overridden by n (b)"]


def test_check_rules() -> None:
    wanted, _ = kconfig.merge([_frag("f", A="y", B="m", C="n", D="y", E="64")])
    actual = {"CONFIG_A": "y", "CONFIG_B": "y", "CONFIG_D": "m", "CONFIG_E": "32"}
    assert [(u.name, u.have) for u in kconfig.check(wanted, actual)] == [
        ("CONFIG_D", "m"), ("CONFIG_E", "32")]  # built in serves a module; absent is n


def test_profiles_compose(tmp_path: Path) -> None:
    minimal = kconfig.fragments(["minimal"], None)
    assert [f.source for f in minimal] == ["kernel_configs/minimal.config",
                                           "kernel_configs/struct_ops.config"]
    wanted, _ = kconfig.merge(minimal)
    assert wanted["CONFIG_NET_NS"].value == "y" and wanted["CONFIG_DEBUG_INFO_BTF"].value == "y"
    assert "CONFIG_ACPI" not in wanted  # /init reboots; QEMU -no-reboot exits
    built = kconfig.fragments(["minimal"], None, building=True)
    assert [f.source for f in built][-1] == "kernel_configs/trim.config"
    assert kconfig.merge(built)[0]["CONFIG_IPV6"].value == "n"  # left out, not required
    with pytest.raises(UsageError, match="needs a kernel tree"):
        kconfig.fragments(["selftests"], None)
    st = tmp_path / "tools/testing/selftests/bpf"
    st.mkdir(parents=True)
    (st / "config").write_text("CONFIG_BPF_LSM=y\n")
    (st / "config.x86_64").write_text("CONFIG_HZ=1000\n")
    names = [f.source for f in kconfig.fragments(["selftests"], tmp_path)]
    assert names[2:] == ["tools/testing/selftests/bpf/config",
                         "tools/testing/selftests/bpf/config.x86_64"]


def test_bad_fragments(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        kconfig.fragments([str(tmp_path / "absent.config")], None)
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(UsageError, match="no CONFIG_ lines"):
        kconfig.fragments([str(tmp_path / "notes.txt")], None)


def test_cli_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / ".config"
    config.write_text("CONFIG_A=y\n# CONFIG_B is not set\n")
    frag = tmp_path / "want.config"
    frag.write_text("CONFIG_A=y\nCONFIG_B=y\n")
    argv = ["kconfig", "check", "--kernel-config", str(config), "--kconfig", str(frag)]
    assert cli.main(argv) == cli.EXIT_TEST_FAILURE
    assert f"missing: CONFIG_B=y (kernel has n; from {frag})" in capsys.readouterr().out
    assert cli.main([*argv, "--json"]) == cli.EXIT_TEST_FAILURE
    printed = json.loads(capsys.readouterr().out)
    assert printed["wanted"] == 2 and [u["name"] for u in printed["unmet"]] == ["CONFIG_B"]
    config.write_text("CONFIG_A=y\nCONFIG_B=y\n")
    assert cli.main(argv) == cli.EXIT_PASS
    assert cli.main(["kconfig", "check", "--kernel-config", str(tmp_path / "nope"),
                     "--kconfig", str(frag)]) == cli.EXIT_USAGE


@pytest.mark.build
def test_prebuilt_kernel_against_the_profiles(default_tree: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Debian's cloud kernel has what the harness needs, not all the selftests ask for."""
    assert cli.main(["kconfig", "check"]) == cli.EXIT_PASS
    assert cli.main(["kconfig", "check", "--kconfig", "minimal"]) == cli.EXIT_PASS
    capsys.readouterr()
    assert cli.main(["kconfig", "check", "--kconfig", "selftests", "--json"]) == (
        cli.EXIT_TEST_FAILURE)
    printed = json.loads(capsys.readouterr().out)
    sources = {u["source"] for u in printed["unmet"]}
    assert "tools/testing/selftests/bpf/config" in sources
    assert not any(s.startswith("kernel_configs/") for s in sources)


# --- why an option did not survive olddefconfig (kconfiglib on a small Kconfig) --------

SMALL_KCONFIG = """\
config MODULES
\tbool "modules"
\tmodules

config PAHOLE_VERSION
\tint
\tdefault 124

config SECURITY
\tbool "security"

config BPF
\tbool "bpf"

config BPF_LSM
\tbool "lsm"
\tdepends on BPF && SECURITY

config DEBUG_INFO_BTF
\tbool "btf"
\tdepends on BPF && PAHOLE_VERSION >= 125

choice
\tprompt "mode"
config MODE_A
\tbool "a"
config MODE_B
\tbool "b"
endchoice
"""


def _explain(tmp_path: Path, config: str, **want: str) -> list[kconfig.Explained]:
    (tmp_path / "Kconfig").write_text(SMALL_KCONFIG)
    (tmp_path / ".config").write_text(config)
    unmet = [kconfig.Unmet(f"CONFIG_{n}", v, "n", "frag.config") for n, v in want.items()]
    return kconfig.explain(tmp_path / "Kconfig", tmp_path / ".config", unmet,
                           {"srctree": str(tmp_path)})


def test_explain_names_the_unmet_dependency(tmp_path: Path) -> None:
    [e] = _explain(tmp_path, "CONFIG_BPF=y\n", BPF_LSM="y")
    assert e.blockers == ("SECURITY (SECURITY=n)",) and e.tool is None
    assert e.line() == ("CONFIG_BPF_LSM=y became n after olddefconfig (from frag.config): "
                        "it depends on SECURITY (SECURITY=n)")


def test_explain_finds_a_toolchain_version(tmp_path: Path) -> None:
    [e] = _explain(tmp_path, "CONFIG_BPF=y\n", DEBUG_INFO_BTF="y")
    assert e.tool == "pahole"
    assert "PAHOLE_VERSION >= 125 (PAHOLE_VERSION=124)" in e.line()


def test_explain_unknown_option_and_other_causes(tmp_path: Path) -> None:
    unknown, chosen = _explain(tmp_path, "CONFIG_MODE_A=y\n", NO_SUCH_OPTION="y", MODE_B="y")
    assert unknown.unknown
    assert unknown.line() == ("CONFIG_NO_SUCH_OPTION (from frag.config) is not an option of "
                              "this tree's Kconfig")
    assert not chosen.unknown and chosen.blockers == ()
    assert "a choice or a select overrides it" in chosen.line()


def test_explain_restores_the_environment(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("srctree", "/elsewhere")
    _explain(tmp_path, "", BPF="y")
    assert os.environ["srctree"] == "/elsewhere"  # noqa: SIM112 (kbuild spells it so)


def test_explain_survives_a_kconfig_kconfiglib_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "Kconfig").write_text('config BPF\n\tbool "bpf"\n\ttransitional\n')
    (tmp_path / ".config").write_text("")
    unmet = [kconfig.Unmet("CONFIG_BPF", "y", "n", "frag.config")]
    [e] = kconfig.explain(tmp_path / "Kconfig", tmp_path / ".config", unmet,
                          {"srctree": str(tmp_path)})
    assert e.line().startswith("CONFIG_BPF=y (kernel has n; from frag.config); kconfiglib "
                               "cannot read this tree's Kconfig (")


def test_merge_orders_by_last_assignment_and_picks_a_base() -> None:
    first = kconfig.Fragment("a.config", {"CONFIG_X": "y", "CONFIG_DWARF_DEFAULT": "y"})
    second = kconfig.Fragment("b.config", {"CONFIG_DWARF4": "y"})
    third = kconfig.Fragment("tools/testing/selftests/bpf/config.x86_64",
                             {"CONFIG_DWARF_DEFAULT": "y"})
    wanted, notes = kconfig.merge([first, second, third])
    assert list(wanted) == ["CONFIG_X", "CONFIG_DWARF4", "CONFIG_DWARF_DEFAULT"]
    assert notes == []  # the same value again is no override
    assert kconfig.base_config([first, second]) == "tinyconfig"
    assert kconfig.base_config([first, third]) == "alldefconfig"


def test_a_choice_member_that_gave_way_to_another_requested_one(tmp_path: Path) -> None:
    """The 6.12 selftests configs ask for DEBUG_INFO_DWARF4 (config) and
    DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT (config.x86_64), two members of one choice."""
    (tmp_path / "Kconfig").write_text(SMALL_KCONFIG)
    (tmp_path / ".config").write_text("CONFIG_MODE_B=y\n")
    unmet = [kconfig.Unmet("CONFIG_MODE_A", "y", "n", "config")]
    [e] = kconfig.explain(tmp_path / "Kconfig", tmp_path / ".config", unmet,
                          {"srctree": str(tmp_path)}, frozenset({"CONFIG_MODE_A", "CONFIG_MODE_B"}))
    assert e.chosen == "CONFIG_MODE_B"
    assert e.line() == ("CONFIG_MODE_A=y (from config) gave way to CONFIG_MODE_B=y, also "
                        "requested, in the same choice")
