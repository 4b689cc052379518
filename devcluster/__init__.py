"""podplug.devcluster"""
