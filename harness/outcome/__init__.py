"""Outcomes: the test_progs parser (results), the comparison of two runs (compare), and
the result model with report.json and junit.xml (report; junit.xsd describes the XML)."""
