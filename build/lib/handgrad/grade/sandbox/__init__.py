"""The sandbox a submission runs in: a forked child with limits and namespaces
(`isolate`), the confinement it enters (`confine`, `rlimits`), and what it runs (`runner`)."""
