"""Composition: the `wildwatch` command line and the one-command demo, which put the node,
the broker and central together. Nothing here is imported by edge/, central/ or broker/."""
