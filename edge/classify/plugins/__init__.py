"""Classifier back-ends. Every module here registers its Classifier under a key (and may bring
its own settings class); `edge.classify` imports them all the first time a back-end is asked for."""
