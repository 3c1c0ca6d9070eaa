"""The sandbox a submission runs in. The grader's side (`isolate`: run an entry in a child,
bring its result back), the grading server forked from the grader (`server`), the keeper
that confines and relays (`keeper`), the process that runs the submission (`child`), the
namespaces and allow-list root (`confine`), rlimits and streams (`rlimits`), the frames
they exchange (`channel`), and the entry for backpropagation (`runner`)."""
