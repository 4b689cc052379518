"""podplug.runtime"""
