"""Test helpers that ship with storyboard: the local Runware-compatible server."""
