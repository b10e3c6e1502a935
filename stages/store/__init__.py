"""Where chunks live: the content-addressed chunk store and its keys, the one table of stage versions,
atomic file writes and locks, disk-space estimates and full-disk errors; the store's size and pruning (cache), its
budget (budget) and the leases of running jobs (leases)."""
