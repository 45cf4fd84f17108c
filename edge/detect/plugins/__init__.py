"""Detector back-ends. Every module here registers its Detector under a key (and may bring its
own settings class); `edge.detect` imports them all the first time a back-end is asked for."""
