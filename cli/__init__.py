"""podplug.cli"""
