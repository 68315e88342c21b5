//! daemontools-compatible supervision: the `supervise/status` and `supervise/control`
//! formats (kept here, once), and the library code behind supervise, svc, svstat, svok and the
//! run-script chain-loaders.
