"""The byte-level vocabulary every byte-level arm shares: the 256 byte values, then a beginning- and
an end-of-document id. The data layer packs documents with them; the models size their embeddings by
BYTE_VOCAB."""

BYTE_VOCAB = 258
BOS_ID = 256
EOS_ID = 257
