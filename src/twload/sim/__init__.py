"""`twload simulate`: a deterministic model of TIME_WAIT, PAWS, tw_reuse and tw_recycle."""
