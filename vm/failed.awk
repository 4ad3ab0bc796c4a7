# What a retry reruns (vm/run.sh): from test_progs's output, the failed subtests
# ("#N/M test/sub:FAIL"), then the failed tests none of whose subtests failed
# ("#N test:FAIL"), each once, one test_progs -a entry per line.
/^#[0-9]+\/[0-9]+[ \t]+.*:FAIL/ {
    s = $0; sub(/^#[0-9]+\/[0-9]+[ \t]+/, "", s); sub(/:FAIL.*$/, "", s)
    if (!(s in seen)) { seen[s] = 1; subs[n++] = s }
    split(s, part, "/"); parent[part[1]] = 1; next
}
/^#[0-9]+[ \t]+.*:FAIL/ {
    t = $0; sub(/^#[0-9]+[ \t]+/, "", t); sub(/:FAIL.*$/, "", t)
    if (!(t in seen)) { seen[t] = 1; tests[m++] = t }
}
END {
    for (i = 0; i < n; i++) print subs[i]
    for (i = 0; i < m; i++) if (!(tests[i] in parent)) print tests[i]
}
