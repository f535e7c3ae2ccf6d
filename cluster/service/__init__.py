"""The clustered-service side: the ``ClusteredService`` a user writes, the ``Cluster`` facade it is given,
and the example services (echo, key-value)."""
