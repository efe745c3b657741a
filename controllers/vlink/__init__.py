"""Virtual links over the connectivity grid: model, topology, VLANs, rule compiler, store.

The os-ken app that ties them together is `controllers.vlink_manager`.
"""
