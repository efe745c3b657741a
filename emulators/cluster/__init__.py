"""Cluster re-provisioning (spec 000): a cluster manager replaces a failed network element with a
spare from a pool, clones its configuration onto the spare and rewrites both switches'
cross-connects to it. See plan.py for what the lab tells the manager, manager.py for the logic."""
