"""The cluster client: a session with a cluster, from the client's side (Aeron's ``AeronCluster``)."""
