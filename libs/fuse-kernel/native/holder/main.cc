// strata-fd-holder: keeps FUSE connections' /dev/fuse fds open across agent restarts (issue 27).
int main() { return 0; }
