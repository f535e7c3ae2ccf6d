"""The Aeron Cluster implementation.

Transport, archive, consensus, service and client come in later issues.
"""
