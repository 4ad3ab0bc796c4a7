"""Building what the tests need: discovering it in the tree's selftests (discover) and the
targeted build of bpftool, libbpf, bpf_testmod and test_progs (targeted)."""
