"""Reference systems under test: the shared kv state machine, Raft and Paxos."""
