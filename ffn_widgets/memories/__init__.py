"""The keys' side of the memories: corpora (``corpus``), streaming trigger mining over a corpus (``mining``)
and the on-disk index of each neuron's top trigger prefixes and activation histogram (``index``)."""
