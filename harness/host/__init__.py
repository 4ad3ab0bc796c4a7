"""The host side: the only module that starts processes (proc), git on top of it (vcs), the
cache's layout and locks (cache), and the programs a run needs (toolchain)."""
