"""runtime/cli"""
