"""What is tested: the kernel tree (tree), a patch series (series) and its application
(apply) in a worktree the harness owns."""
