"""podplug.operator"""
