"""harness/outcome/junit.xsd accepts what harness writes and refuses what junit-10.xsd refuses."""

from __future__ import annotations

import pathlib

import pytest
from junit_schema import validate

VALID = {
    "passing_suite": """\
<testsuite name="harness" tests="2" failures="0" errors="0" skipped="0" time="12.345"
           timestamp="2026-12-01T23:58:07" hostname="ci-runner-3">
  <testcase classname="verifier" name="verifier_and" time="0.012"/>
  <testcase classname="xdp" name="xdp"/>
</testsuite>
""",
    "failing_testcase": """\
<testsuite name="harness" tests="1" failures="1" errors="0" skipped="0" time="3.5">
  <testcase classname="tc_redirect" name="tc_redirect_peer" time="1.25">
    <failure message="tc_redirect/tc_redirect_peer failed" type="FAIL">test_tc_redirect_peer:FAIL:1
libbpf: prog 'tc_dst': failed to load: -22
#241/3 tc_redirect/tc_redirect_peer:FAIL</failure>
    <system-out>setup: netns created</system-out>
  </testcase>
  <system-out>test_progs ran 1 subtest</system-out>
  <system-err>qemu: warning: host doesn't support requested feature</system-err>
</testsuite>
""",
    "skipped_testcase": """\
<testsuite name="harness" tests="1" failures="0" errors="0" skipped="1">
  <testcase classname="bpf_tcp_ca" name="dctcp">
    <skipped message="skipped"/>
  </testcase>
</testsuite>
""",
    "testsuites_root": """\
<?xml version="1.0" encoding="utf-8"?>
<testsuites name="gate" tests="3" failures="1" errors="0" time="20.000">
  <testsuite name="base" tests="1" failures="0" errors="0" skipped="0" time="9.001">
    <testcase classname="xdp" name="xdp"/>
  </testsuite>
  <testsuite name="series" tests="2" failures="1" errors="0" skipped="0" time="10">
    <testcase classname="xdp" name="xdp"/>
    <testcase classname="verifier" name="verifier_and">
      <failure message="verifier/verifier_and failed">pass -&gt; fail</failure>
    </testcase>
  </testsuite>
</testsuites>
""",
    "bare_testsuites_root": """\
<testsuites>
  <testsuite name="gate" tests="0" failures="0" errors="0"/>
</testsuites>
""",
    "error_testcase": """\
<testsuite name="harness" tests="1" failures="0" errors="1" skipped="0" time="0.500">
  <testcase classname="harness" name="run">
    <error message="test_progs ran no test (exit status 2: nothing matched)" type="harness"/>
  </testcase>
</testsuite>
""",
    "empty_suite": """\
<testsuite name="harness" tests="0" failures="0" errors="0"/>
""",
    "flaky_and_rerun": """\
<testsuite name="harness" tests="2" failures="1" errors="0">
  <testcase classname="t" name="flaky">
    <flakyFailure message="t/flaky:FAIL:x" type="test failure"><stackTrace>log</stackTrace>
    </flakyFailure>
  </testcase>
  <testcase classname="t" name="broken">
    <failure message="m">log</failure>
    <rerunFailure message="m" type="test failure"><stackTrace>again</stackTrace></rerunFailure>
  </testcase>
</testsuite>
""",
}

INVALID = {
    "rerun_without_type": """\
<testsuite name="harness" tests="1" failures="1" errors="0">
  <testcase name="x"><failure message="m"/><rerunFailure message="m"/></testcase>
</testsuite>
""",
    "rerun_before_failure": """\
<testsuite name="harness" tests="1" failures="1" errors="0">
  <testcase name="x"><rerunFailure type="t"/><failure message="m"/></testcase>
</testsuite>
""",
    "testcase_without_name": """\
<testsuite name="harness" tests="1" failures="0" errors="0">
  <testcase classname="xdp"/>
</testsuite>
""",
    "testsuite_without_name": """\
<testsuite tests="0" failures="0" errors="0"/>
""",
    "testsuite_without_counts": """\
<testsuite name="harness"><testcase name="xdp"/></testsuite>
""",
    "system_out_before_testcase": """\
<testsuite name="harness" tests="1" failures="0" errors="0">
  <system-out>early</system-out>
  <testcase name="xdp"/>
</testsuite>
""",
    "system_out_before_failure": """\
<testsuite name="harness" tests="1" failures="1" errors="0">
  <testcase name="xdp"><system-out>log</system-out><failure message="m">x</failure></testcase>
</testsuite>
""",
    "failure_and_error": """\
<testsuite name="harness" tests="1" failures="1" errors="1">
  <testcase name="xdp"><failure message="m"/><error message="e"/></testcase>
</testsuite>
""",
    "non_numeric_time": """\
<testsuite name="harness" tests="0" failures="0" errors="0" time="fast"/>
""",
    "four_decimals_time": """\
<testsuite name="harness" tests="0" failures="0" errors="0" time="1.2345"/>
""",
    "non_numeric_testcase_time": """\
<testsuite name="harness" tests="1" failures="0" errors="0">
  <testcase name="xdp" time="1s"/>
</testsuite>
""",
    "non_numeric_count": """\
<testsuite name="harness" tests="many" failures="0" errors="0"/>
""",
    "timestamp_with_timezone": """\
<testsuite name="harness" tests="0" failures="0" errors="0" timestamp="2026-12-01T23:58:07Z"/>
""",
    "unknown_testcase_attribute": """\
<testsuite name="harness" tests="1" failures="0" errors="0">
  <testcase name="xdp" file="prog_tests/xdp.c"/>
</testsuite>
""",
    "skipped_on_testsuites": """\
<testsuites skipped="0">
  <testsuite name="harness" tests="0" failures="0" errors="0"/>
</testsuites>
""",
    "empty_testsuites": """\
<testsuites name="gate"/>
""",
    "unknown_root": """\
<testcase name="xdp"/>
""",
    "element_inside_failure": """\
<testsuite name="harness" tests="1" failures="1" errors="0">
  <testcase name="xdp"><failure message="m"><line>x</line></failure></testcase>
</testsuite>
""",
    "not_well_formed": """\
<testsuite name="harness" tests="0" failures="0" errors="0">
""",
}


def _write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "junit.xml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text", VALID.values(), ids=VALID.keys())
def test_valid(tmp_path: pathlib.Path, text: str) -> None:
    validate(_write(tmp_path, text))


@pytest.mark.parametrize("text", INVALID.values(), ids=INVALID.keys())
def test_invalid(tmp_path: pathlib.Path, text: str) -> None:
    with pytest.raises(AssertionError):
        validate(_write(tmp_path, text))


def test_reason_names_the_problem(tmp_path: pathlib.Path) -> None:
    with pytest.raises(AssertionError, match="name"):
        validate(_write(tmp_path, INVALID["testcase_without_name"]))
